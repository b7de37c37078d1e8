//! Times one training epoch of a zoo net on 60k random MNIST-shaped samples (no data files
//! needed): `cargo run --release -p deepshrink-engine --example synthetic_epoch -- lenet-5`.
use deepshrink_engine::{rng::Rng, train, zoo, Data, Model, NoHook, TrainConfig};

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "lenet-5".into());
    let n = 60_000;
    let mut rng = Rng::new(1);
    let x: Vec<f32> = (0..n * 784).map(|_| rng.range(-1.0, 1.0)).collect();
    let y: Vec<u32> = (0..n).map(|_| rng.below(10) as u32).collect();
    let mut model = Model::new(zoo::build(&name, 0).unwrap()).unwrap();
    let stats =
        train(&mut model, Data { x: &x, y: &y }, &TrainConfig::default(), &mut NoHook, &mut |_| {}).unwrap();
    eprint!("{}", deepshrink_engine::profile::report());
    println!("{name}: epoch {:.2} s, loss {:.4}", stats[0].seconds, stats[0].loss);
}
