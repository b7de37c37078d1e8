//! Circulant layers trained end to end: the weights stay exactly block-circulant (with their
//! column signs), the stored values reproduce them bit for bit, the FFT kernel gives the same
//! products, and the network still learns.

mod common;

use common::quadrants;
use deepshrink_compress::{run, Context, Recipe};
use deepshrink_engine::{zoo, Data};
use deepshrink_kernels::CirculantWeights;

#[test]
fn circulant_layers_train_from_scratch_and_keep_their_structure() {
    let (xt, yt) = quadrants(600, 5);
    let (xs, ys) = quadrants(200, 6);
    let train = Data { x: &xt, y: &yt };
    let test = Data { x: &xs, y: &ys };
    let recipe = Recipe::parse(
        "[[pass]]\nkind = \"circulant\"\nlayers = { \"fc2.weight\" = 64 }\nseed = 3\nepochs = 3\nlr = 3e-3\n",
    )
    .unwrap();
    let mut ctx = Context { train, test, batch_size: 32, seed: 0, progress: &mut |_, _| {} };
    let (state, report) = run(&recipe, zoo::build("lenet-300-100", 1).unwrap(), &mut ctx).unwrap();
    assert!(report.stages.last().unwrap().test_top1 > 0.9, "{:?}", report.stages);
    let g = state.model.to_graph();
    let stored = state.circulant_tensors();
    for (name, block, values) in
        [("fc1.weight", 784, 784), ("fc2.weight", 64, 5 * 2 * 64), ("fc3.weight", 100, 100)]
    {
        let w = g.weights[name].as_f32().unwrap();
        let t = &stored[name];
        assert_eq!((t.block, t.values.len()), (block, values), "{name}");
        // Exactly block-circulant: what the container stores is the trained matrix.
        assert_eq!(t.to_dense().as_f32().unwrap(), w, "{name}");
        // The FFT product equals the dense product of the trained weights.
        let (rows, cols) = (t.rows(), t.cols());
        let k = CirculantWeights::new(rows, cols, block, &t.values, t.negative().as_deref()).unwrap();
        let x: Vec<f32> = xs[..cols.min(784)].iter().copied().cycle().take(cols).collect();
        let mut y = vec![0.0; rows];
        k.matmul(&x, 1, &mut y).unwrap();
        for (r, &v) in y.iter().enumerate() {
            let e: f32 = (0..cols).map(|c| w[r * cols + c] * x[c]).sum();
            assert!((v - e).abs() < 1e-3 * (1.0 + e.abs()), "{name} row {r}: {v} vs {e}");
        }
    }
    let (_, sparse) = state.to_sparse();
    assert!(sparse.is_empty(), "circulant layers are not stored as sparse matrices");
}

#[test]
fn bad_circulant_recipes_are_errors() {
    let (xt, yt) = quadrants(40, 5);
    let data = Data { x: &xt, y: &yt };
    for (recipe, msg) in [
        ("[[pass]]\nkind = \"circulant\"\nblock = 1\n", "larger block"),
        ("[[pass]]\nkind = \"circulant\"\nlayers = { \"fc3.weight\" = 200 }\n", "larger than"),
        ("[[pass]]\nkind = \"prune\"\nsparsity = 0.5\n[[pass]]\nkind = \"circulant\"\n", "already pruned"),
    ] {
        let recipe = Recipe::parse(recipe).unwrap();
        let mut ctx = Context { train: data, test: data, batch_size: 8, seed: 0, progress: &mut |_, _| {} };
        let err = run(&recipe, zoo::build("lenet-300-100", 1).unwrap(), &mut ctx).err().unwrap();
        assert!(err.to_string().contains(msg), "{err}");
    }
    let err = Recipe::parse("[[pass]]\nkind = \"circulant\"\nlr = -1.0\n").unwrap_err();
    assert!(err.to_string().contains("lr"), "{err}");
    let err = Recipe::parse("[[pass]]\nkind = \"circulant\"\ninit = \"zeros\"\n").unwrap_err();
    assert!(err.to_string().contains("zeros"), "{err}");
}

#[test]
fn committed_circulant_recipes_parse() {
    for text in
        [include_str!("../../../recipes/circulant.toml"), include_str!("../../../recipes/circulant-b64.toml")]
    {
        let r = Recipe::parse(text).unwrap();
        assert_eq!(r.passes[0].name(), "circulant");
    }
}
