//! Time of one `INTER_AREA` shrink of a 210×160 gray screen to 84×84 (the Atari presets'),
//! median of 15 batches of 2,000 resizes of one noise frame:
//!
//!     cargo run --release -p keel-envs --features atari --example resize_speed
use keel_envs::atari::AreaResize;

fn main() {
    let mut resize = AreaResize::new(210, 160, 1, 84, 84);
    let mut x = 1u64;
    let src: Vec<u8> = (0..resize.input_len())
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    let mut dst = vec![0u8; resize.output_len()];
    let mut micros: Vec<f64> = (0..15)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..2000 {
                resize.run(&src, &mut dst);
            }
            start.elapsed().as_secs_f64() / 2000.0 * 1e6
        })
        .collect();
    micros.sort_by(f64::total_cmp);
    let checksum: u64 = dst.iter().map(|&v| u64::from(v)).sum();
    println!(
        "resize 210x160 -> 84x84: {:.2} us (median), {:.2} us (min); output checksum {checksum}",
        micros[7], micros[0]
    );
}
