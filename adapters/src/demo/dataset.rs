//! The demo data set: coloured shapes on a dark background, drawn procedurally from a seed.
//!
//! Every image is `3 × 16 × 16` RGB in `[-1, 1]`: one large, roughly centred shape (circle,
//! square, triangle or cross) in one of four colours, with a modest jitter of position and size.
//! The class is the `(shape, colour)` pair. The variance is deliberately small: a first version
//! drew shapes anywhere at any size in 32×32 and a 470k-parameter model trained for minutes only
//! learned the colours, not the shapes.

use candle_core::{Device, Result, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Image side in pixels.
pub const IMAGE_SIZE: usize = 16;

/// The shapes of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A filled disc.
    Circle,
    /// A filled axis-aligned square.
    Square,
    /// A filled upward triangle.
    Triangle,
    /// A plus sign.
    Cross,
}

impl Shape {
    /// All shapes, in class order.
    pub const ALL: [Shape; 4] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Cross];

    /// Lower-case name (`circle`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Cross => "cross",
        }
    }

    /// Whether pixel `(x, y)` (pixel-centre coordinates) lies inside the shape of half-size `r`
    /// centred at `(cx, cy)`.
    fn contains(self, x: f32, y: f32, cx: f32, cy: f32, r: f32) -> bool {
        let (dx, dy) = (x - cx, y - cy);
        match self {
            Shape::Circle => dx * dx + dy * dy <= r * r,
            Shape::Square => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
            Shape::Triangle => {
                // Apex at the top (cy - r), base at cy + r; the half-width grows linearly.
                let t = (dy + r) / (2.0 * r);
                (0.0..=1.0).contains(&t) && dx.abs() <= t * r
            }
            Shape::Cross => {
                let arm = r * 0.35;
                (dx.abs() <= arm && dy.abs() <= r) || (dy.abs() <= arm && dx.abs() <= r)
            }
        }
    }
}

/// The colours of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colour {
    /// Red.
    Red,
    /// Green.
    Green,
    /// Blue.
    Blue,
    /// Yellow.
    Yellow,
}

impl Colour {
    /// All colours, in class order.
    pub const ALL: [Colour; 4] = [Colour::Red, Colour::Green, Colour::Blue, Colour::Yellow];

    /// Lower-case name (`red`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
        }
    }

    /// RGB in `[-1, 1]`.
    pub fn rgb(self) -> [f32; 3] {
        match self {
            Colour::Red => [0.9, -0.8, -0.8],
            Colour::Green => [-0.8, 0.8, -0.8],
            Colour::Blue => [-0.7, -0.5, 0.95],
            Colour::Yellow => [0.95, 0.85, -0.8],
        }
    }
}

/// Background RGB in `[-1, 1]` (dark grey).
pub const BACKGROUND: [f32; 3] = [-0.75, -0.75, -0.75];

/// A class of the data set: a shape in a colour. Its index is `shape * 4 + colour`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DemoClass {
    /// The shape.
    pub shape: Shape,
    /// The colour.
    pub colour: Colour,
}

impl DemoClass {
    /// Number of classes.
    pub const COUNT: usize = Shape::ALL.len() * Colour::ALL.len();

    /// The class of `index` (`shape * 4 + colour`), or `None` if out of range.
    pub fn from_index(index: usize) -> Option<Self> {
        let shape = *Shape::ALL.get(index / Colour::ALL.len())?;
        let colour = *Colour::ALL.get(index % Colour::ALL.len())?;
        Some(Self { shape, colour })
    }

    /// The index, `shape * 4 + colour`.
    pub fn index(self) -> usize {
        let s = Shape::ALL.iter().position(|s| *s == self.shape).unwrap_or(0);
        let c = Colour::ALL.iter().position(|c| *c == self.colour).unwrap_or(0);
        s * Colour::ALL.len() + c
    }

    /// Parses `"red circle"`, `"circle red"`, `"red-circle"` or `"red_circle"`
    /// (case-insensitive), or `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let lower = text.to_ascii_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
            .filter(|w| !w.is_empty())
            .collect();
        let shape = Shape::ALL.into_iter().find(|s| words.contains(&s.name()))?;
        let colour = Colour::ALL.into_iter().find(|c| words.contains(&c.name()))?;
        (words.len() == 2).then_some(Self { shape, colour })
    }

    /// `"red circle"`.
    pub fn name(self) -> String {
        format!("{} {}", self.colour.name(), self.shape.name())
    }
}

/// Half-size range of the shapes in pixels (of [`IMAGE_SIZE`]).
const RADIUS: std::ops::Range<f32> = 5.0..6.5;
/// Largest offset of a shape's centre from the image centre, in pixels.
const JITTER: f32 = 1.0;

/// Draws one image of `class` with its own position and size from `rng`: `3 × 16 × 16`
/// channel-major values in `[-1, 1]`. Edges are anti-aliased by 4×4 supersampling.
pub fn draw(class: DemoClass, rng: &mut StdRng) -> Vec<f32> {
    let half = IMAGE_SIZE as f32 / 2.0;
    let r: f32 = rng.random_range(RADIUS);
    let cx: f32 = half + rng.random_range(-JITTER..JITTER);
    let cy: f32 = half + rng.random_range(-JITTER..JITTER);
    let fg = class.colour.rgb();
    let mut out = vec![0f32; 3 * IMAGE_SIZE * IMAGE_SIZE];
    const SS: usize = 4;
    for y in 0..IMAGE_SIZE {
        for x in 0..IMAGE_SIZE {
            let mut hits = 0usize;
            for sy in 0..SS {
                for sx in 0..SS {
                    let px = x as f32 + (sx as f32 + 0.5) / SS as f32;
                    let py = y as f32 + (sy as f32 + 0.5) / SS as f32;
                    hits += usize::from(class.shape.contains(px, py, cx, cy, r));
                }
            }
            let a = hits as f32 / (SS * SS) as f32;
            for c in 0..3 {
                out[c * IMAGE_SIZE * IMAGE_SIZE + y * IMAGE_SIZE + x] = a * fg[c] + (1.0 - a) * BACKGROUND[c];
            }
        }
    }
    out
}

/// A batch of `batch` images `(batch, 3, 16, 16)` in `[-1, 1]` with their class indices, drawn
/// deterministically from `seed` (classes uniform).
pub fn batch(batch: usize, seed: u64, device: &Device) -> Result<(Tensor, Vec<usize>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(batch * 3 * IMAGE_SIZE * IMAGE_SIZE);
    let mut classes = Vec::with_capacity(batch);
    for _ in 0..batch {
        let index = rng.random_range(0..DemoClass::COUNT);
        let class = DemoClass::from_index(index).ok_or_else(|| candle_core::Error::msg("class index"))?;
        pixels.extend(draw(class, &mut rng));
        classes.push(index);
    }
    let images = Tensor::from_vec(pixels, (batch, 3, IMAGE_SIZE, IMAGE_SIZE), device)?;
    Ok((images, classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_deterministic_in_range_and_shaped() -> Result<()> {
        let (a, ca) = batch(8, 3, &Device::Cpu)?;
        let (b, cb) = batch(8, 3, &Device::Cpu)?;
        let (c, _) = batch(8, 4, &Device::Cpu)?;
        assert_eq!(a.dims(), &[8, 3, IMAGE_SIZE, IMAGE_SIZE]);
        assert_eq!(ca, cb);
        let (va, vb) = (
            a.flatten_all()?.to_vec1::<f32>()?,
            b.flatten_all()?.to_vec1::<f32>()?,
        );
        assert_eq!(va, vb);
        assert_ne!(va, c.flatten_all()?.to_vec1::<f32>()?);
        assert!(va.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(ca.iter().all(|c| *c < DemoClass::COUNT));
        Ok(())
    }

    #[test]
    fn each_image_has_its_colour_on_the_background() {
        let mut rng = StdRng::seed_from_u64(0);
        for index in 0..DemoClass::COUNT {
            let class = DemoClass::from_index(index).unwrap();
            assert_eq!(class.index(), index);
            assert_eq!(DemoClass::parse(&class.name()), Some(class));
            let img = draw(class, &mut rng);
            let plane = IMAGE_SIZE * IMAGE_SIZE;
            let fg = class.colour.rgb();
            let inside = (0..plane)
                .filter(|&p| (0..3).all(|c| (img[c * plane + p] - fg[c]).abs() < 1e-6))
                .count();
            let outside = (0..plane)
                .filter(|&p| (0..3).all(|c| (img[c * plane + p] - BACKGROUND[c]).abs() < 1e-6))
                .count();
            assert!(
                inside > 20 && outside > 80,
                "{}: {inside} {outside}",
                class.name()
            );
        }
        assert_eq!(DemoClass::from_index(DemoClass::COUNT), None);
        assert_eq!(DemoClass::parse("purple circle"), None);
        assert_eq!(
            DemoClass::parse("Circle-Blue"),
            Some(DemoClass {
                shape: Shape::Circle,
                colour: Colour::Blue
            })
        );
    }
}
