//! A small software viewer of the humanoid: its collision shapes and the ground, drawn into an
//! RGB frame, with an optional second pose (the reference clip) as a translucent ghost.
//!
//! The camera is orthographic, looking at the root from the character's right and a little
//! above and in front, and follows the root on the ground. Under an orthographic projection a
//! capsule's outline is exactly a stroked segment with round caps and a sphere's a disc, so the
//! 3-D shapes reduce to 2-D paths that `tiny-skia` fills with anti-aliasing; boxes are drawn as
//! their faces turned to the camera. Shapes are painted back to front (painter's algorithm), the
//! ground as a checkerboard with the bodies' shadows straight below them.

use glam::{DQuat, DVec3};
use tiny_skia::{Color, FillRule, LineCap, Paint, PathBuilder, Pixmap, Stroke, Transform};

use crate::model::{BodyState, HumanoidModel, Shape, quat};

/// An RGB image: `height` rows of `width` pixels, 3 bytes each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `height · width · 3` bytes, row-major.
    pub rgb: Vec<u8>,
}

/// Colours (sRGB) of the simulated humanoid, the ghost and the scene.
const BODY: [u8; 3] = [31, 119, 180];
const GHOST: [u8; 3] = [255, 127, 14];
const GHOST_ALPHA: u8 = 110;
const SKY: [u8; 3] = [236, 240, 245];
const TILE_LIGHT: [u8; 3] = [214, 218, 222];
const TILE_DARK: [u8; 3] = [190, 195, 201];
/// Side of a ground tile, m.
const TILE: f64 = 0.5;

/// One shape to paint, at its depth.
struct Primitive {
    depth: f64,
    kind: Kind,
    colour: [u8; 3],
    alpha: u8,
}

enum Kind {
    /// A segment (capsule) or a point (sphere, `a == b`) swept by a radius, in pixels.
    Swept { a: (f32, f32), b: (f32, f32), radius: f32 },
    /// A convex polygon, in pixels.
    Polygon { points: [(f32, f32); 4] },
}

/// Draws frames of one size; reuses its buffers from frame to frame.
pub struct Renderer {
    pixmap: Option<Pixmap>,
    frame: Frame,
    primitives: Vec<Primitive>,
    /// Pixels per metre.
    pub scale: f64,
    /// Camera azimuth (about +y, from the character's right side) and elevation, rad.
    pub view: (f64, f64),
}

impl Renderer {
    /// A renderer of `width × height` frames (each side at least 1).
    pub fn new(width: usize, height: usize) -> Self {
        let (width, height) = (width.max(1), height.max(1));
        Self {
            pixmap: Pixmap::new(width as u32, height as u32),
            frame: Frame { width, height, rgb: vec![0; width * height * 3] },
            primitives: Vec::new(),
            scale: height as f64 / 2.3,
            view: (0.3, 0.2),
        }
    }

    /// The last frame drawn.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// Draws `bodies` (the model's body states) and, translucent, `ghost`, the camera on the
    /// root of `bodies`.
    pub fn draw(&mut self, model: &HumanoidModel, bodies: &[BodyState], ghost: Option<&[BodyState]>) {
        let Some(pixmap) = self.pixmap.as_mut() else { return };
        let (az, el) = self.view;
        let eye = DVec3::new(az.sin() * el.cos(), el.sin(), az.cos() * el.cos());
        let right = DVec3::Y.cross(eye).normalize();
        let up = eye.cross(right);
        let root = bodies.first().map_or(DVec3::ZERO, |b| DVec3::from(b.position));
        let centre = DVec3::new(root.x, 0.85, root.z);
        let (w, h, s) = (self.frame.width as f64, self.frame.height as f64, self.scale);
        let project = |p: DVec3| {
            let d = p - centre;
            (((w / 2.0) + s * d.dot(right)) as f32, ((h * 0.55) - s * d.dot(up)) as f32)
        };
        let depth = |p: DVec3| (p - centre).dot(eye);

        pixmap.fill(rgba(SKY, 255));
        let mut paint = Paint { anti_alias: false, ..Paint::default() };
        // The ground: tiles around the root, far ones first (all lie in one plane, so any order
        // paints the same; no anti-aliasing, so no seams).
        let (ix, iz) = ((root.x / TILE).floor() as i64, (root.z / TILE).floor() as i64);
        for i in ix - 10..=ix + 10 {
            for k in iz - 8..=iz + 8 {
                let corner =
                    |di: i64, dk: i64| project(DVec3::new((i + di) as f64 * TILE, 0.0, (k + dk) as f64 * TILE));
                let colour = if (i + k).rem_euclid(2) == 0 { TILE_LIGHT } else { TILE_DARK };
                paint.set_color(rgba(colour, 255));
                fill_polygon(pixmap, &[corner(0, 0), corner(1, 0), corner(1, 1), corner(0, 1)], &paint);
            }
        }
        paint.anti_alias = true;

        self.primitives.clear();
        let mut sets: Vec<(&[BodyState], [u8; 3], u8, bool)> = vec![(bodies, BODY, 255, true)];
        if let Some(ghost) = ghost {
            sets.push((ghost, GHOST, GHOST_ALPHA, false));
        }
        for (states, colour, alpha, shadow) in sets {
            for (body, state) in model.bodies().iter().zip(states) {
                // The left side lighter, so that the limbs read apart.
                let colour = if body.name.starts_with("left_") { colour.map(|c| c + (255 - c) / 3) } else { colour };
                let rotation = quat(&state.rotation).normalize() * quat(&body.shape_rotation).normalize();
                let origin =
                    DVec3::from(state.position) + quat(&state.rotation).normalize() * DVec3::from(body.shape_origin);
                let ground = |p: DVec3| DVec3::new(p.x, 0.0, p.z);
                match body.shape {
                    Shape::Capsule { radius, half_length } => {
                        let axis = rotation * DVec3::new(0.0, 0.0, half_length);
                        let (a, b) = (origin - axis, origin + axis);
                        let swept = |a: DVec3, b: DVec3| Kind::Swept {
                            a: project(a),
                            b: project(b),
                            radius: (radius * s) as f32,
                        };
                        self.primitives.push(Primitive {
                            depth: depth(origin),
                            kind: swept(a, b),
                            colour: shade(colour, rotation, eye),
                            alpha,
                        });
                        if shadow {
                            self.primitives.push(Primitive {
                                depth: f64::NEG_INFINITY,
                                kind: swept(ground(a), ground(b)),
                                colour: [0, 0, 0],
                                alpha: 40,
                            });
                        }
                    }
                    Shape::Sphere { radius } => {
                        let kind = |p: DVec3| Kind::Swept { a: project(p), b: project(p), radius: (radius * s) as f32 };
                        self.primitives.push(Primitive { depth: depth(origin), kind: kind(origin), colour, alpha });
                        if shadow {
                            self.primitives.push(Primitive {
                                depth: f64::NEG_INFINITY,
                                kind: kind(ground(origin)),
                                colour: [0, 0, 0],
                                alpha: 40,
                            });
                        }
                    }
                    Shape::Box { half_extents } => {
                        let half = DVec3::from(half_extents);
                        for axis in 0..3 {
                            for sign in [-1.0, 1.0] {
                                let mut normal = DVec3::ZERO;
                                normal[axis] = sign;
                                let world_normal = rotation * normal;
                                if world_normal.dot(eye) <= 0.0 {
                                    continue;
                                }
                                let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
                                let corner = |cu: f64, cv: f64| {
                                    let mut local = normal * half[axis];
                                    local[u] = cu * half[u];
                                    local[v] = cv * half[v];
                                    project(origin + rotation * local)
                                };
                                let points =
                                    [corner(-1.0, -1.0), corner(1.0, -1.0), corner(1.0, 1.0), corner(-1.0, 1.0)];
                                let light =
                                    0.55 + 0.45 * world_normal.dot(DVec3::new(0.3, 0.9, 0.3).normalize()).max(0.0);
                                let face = colour.map(|c| (f64::from(c) * light).min(255.0) as u8);
                                let depth = depth(origin + world_normal * half[axis]);
                                self.primitives.push(Primitive {
                                    depth,
                                    kind: Kind::Polygon { points },
                                    colour: face,
                                    alpha,
                                });
                            }
                        }
                        if shadow {
                            let a = ground(origin - rotation * DVec3::new(half.x, 0.0, 0.0));
                            let b = ground(origin + rotation * DVec3::new(half.x, 0.0, 0.0));
                            let kind = Kind::Swept { a: project(a), b: project(b), radius: (half.z * s) as f32 };
                            self.primitives.push(Primitive {
                                depth: f64::NEG_INFINITY,
                                kind,
                                colour: [0, 0, 0],
                                alpha: 40,
                            });
                        }
                    }
                }
            }
        }
        self.primitives.sort_by(|a, b| a.depth.total_cmp(&b.depth));
        for primitive in &self.primitives {
            paint.set_color(rgba(primitive.colour, primitive.alpha));
            match primitive.kind {
                Kind::Swept { a, b, radius } => {
                    let path = if a == b {
                        PathBuilder::from_circle(a.0, a.1, radius.max(0.5))
                    } else {
                        let mut builder = PathBuilder::new();
                        builder.move_to(a.0, a.1);
                        builder.line_to(b.0, b.1);
                        builder.finish()
                    };
                    let Some(path) = path else { continue };
                    if a == b {
                        pixmap.fill_path(&path, &paint, FillRule::Winding, Transform::identity(), None);
                    } else {
                        let stroke =
                            Stroke { width: 2.0 * radius.max(0.5), line_cap: LineCap::Round, ..Stroke::default() };
                        pixmap.stroke_path(&path, &paint, &stroke, Transform::identity(), None);
                    }
                }
                Kind::Polygon { points } => fill_polygon(pixmap, &points, &paint),
            }
        }
        // RGBA (opaque after the sky) to RGB.
        for (rgb, rgba) in self.frame.rgb.chunks_exact_mut(3).zip(pixmap.data().chunks_exact(4)) {
            rgb.copy_from_slice(&rgba[..3]);
        }
    }
}

fn rgba([r, g, b]: [u8; 3], a: u8) -> Color {
    Color::from_rgba8(r, g, b, a)
}

fn fill_polygon(pixmap: &mut Pixmap, points: &[(f32, f32)], paint: &Paint<'_>) {
    let mut builder = PathBuilder::new();
    for (i, &(x, y)) in points.iter().enumerate() {
        if i == 0 { builder.move_to(x, y) } else { builder.line_to(x, y) }
    }
    builder.close();
    if let Some(path) = builder.finish() {
        pixmap.fill_path(&path, paint, FillRule::Winding, Transform::identity(), None);
    }
}

/// A capsule's colour, lighter when its axis lies across the view (lit from the side).
fn shade(colour: [u8; 3], rotation: DQuat, eye: DVec3) -> [u8; 3] {
    let across = 1.0 - (rotation * DVec3::Z).dot(eye).abs();
    let light = 0.8 + 0.2 * across;
    colour.map(|c| (f64::from(c) * light).min(255.0) as u8)
}
