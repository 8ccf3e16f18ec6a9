//! End-to-end proof of the libtorch toolchain: an MLP trained by Adam on a fixed regression
//! task must reduce its loss. Runs in the normal test command without `LD_LIBRARY_PATH`.

use keel_agents::tch::{self, Device, Kind, Tensor, nn, nn::Module, nn::OptimizerConfig};

#[test]
fn mlp_adam_reduces_loss() {
    keel_agents::threads::configure();
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let net = nn::seq().add(nn::linear(&root / "l1", 4, 64, Default::default())).add_fn(|x| x.tanh()).add(nn::linear(
        &root / "l2",
        64,
        1,
        Default::default(),
    ));
    // Target: a smooth nonlinear function of the inputs.
    let x = Tensor::randn([256, 4], (Kind::Float, Device::Cpu));
    let y = (x.narrow(1, 0, 1).sin() + x.narrow(1, 1, 1) * x.narrow(1, 2, 1) * 0.5).detach();
    let mut opt = match nn::Adam::default().build(&vs, 1e-2) {
        Ok(opt) => opt,
        Err(err) => panic!("building Adam failed: {err}"),
    };
    let loss_of = |net: &nn::Sequential| (net.forward(&x) - &y).square().mean(Kind::Float);
    let initial = loss_of(&net).double_value(&[]);
    for _ in 0..200 {
        let loss = loss_of(&net);
        opt.backward_step(&loss);
    }
    let last = loss_of(&net).double_value(&[]);
    assert!(initial.is_finite() && last.is_finite());
    assert!(last < 0.2 * initial, "loss {initial} -> {last} did not fall by 5x");
}

#[test]
fn thread_count_is_explicit() {
    keel_agents::threads::configure();
    assert_eq!(tch::get_num_threads(), keel_agents::threads::torch_threads());
}
