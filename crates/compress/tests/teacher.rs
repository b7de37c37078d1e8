//! Distillation as the recovery step of a recipe: a `[teacher]` table makes every fine-tuning
//! step train against the uncompressed model's soft targets, with the passes' masks and
//! codebooks still holding; its settings and class count are checked.

mod common;

use common::quadrants;
use deepshrink_compress::teacher::{SoftTargets, TeacherConfig};
use deepshrink_compress::{run, run_with_teacher, Context, Recipe};
use deepshrink_engine::distill_loss::kd;
use deepshrink_engine::{zoo, Batch, Data, Model, NoHook, Objective, TrainConfig};
use deepshrink_graph::{Graph, Op, Tensor, ValueInfo};

const PASSES: &str = r#"
[[pass]]
kind = "prune"
sparsity = 0.95
schedule = "one-shot"
retrain_epochs = 1
lr = 1e-3

[[pass]]
kind = "share"
bits_fc = 2
finetune_epochs = 1
lr = 1e-3
"#;

fn trained(train: Data) -> Graph {
    let mut m = Model::new(zoo::build("lenet-300-100", 3).unwrap()).unwrap();
    let cfg = TrainConfig { epochs: 2, batch_size: 32, ..Default::default() };
    deepshrink_engine::train(&mut m, train, &cfg, &mut NoHook, &mut |_| {}).unwrap();
    m.to_graph()
}

#[test]
fn fine_tuning_with_the_teacher_keeps_masks_and_codebooks() {
    let (xt, yt) = quadrants(400, 1);
    let (xs, ys) = quadrants(200, 2);
    let (train, test) = (Data { x: &xt, y: &yt }, Data { x: &xs, y: &ys });
    let model = trained(train);
    let with =
        Recipe::parse(&format!("[teacher]\nmodel = \"self\"\ntemperature = 4.0\nalpha = 0.9\n{PASSES}"))
            .unwrap();
    let without = Recipe::parse(PASSES).unwrap();
    let run_one = |r: &Recipe| {
        let mut ctx = Context { train, test, batch_size: 32, seed: 7, progress: &mut |_, _| {} };
        run(r, model.clone(), &mut ctx).unwrap()
    };
    let (sw, rw) = run_one(&with);
    let (so, ro) = run_one(&without);
    // The same stages; the teacher changed what fine-tuning did (same seed, same data order).
    let names =
        |r: &deepshrink_compress::Report| r.stages.iter().map(|s| s.stage.clone()).collect::<Vec<_>>();
    assert_eq!(names(&rw), names(&ro));
    let (gw, go) = (sw.model.to_graph(), so.model.to_graph());
    assert_ne!(gw.weights["fc1.weight"], go.weights["fc1.weight"], "the teacher made no difference");
    // Both fine-tunings recover on this easy task.
    assert!(rw.stages.last().unwrap().test_top1 > 0.95, "{:?}", rw.stages);
    // With the teacher the constraints still hold exactly: 95% of each layer zero, the rest on
    // at most 2^2 shared values.
    for (name, _) in &sw.layers {
        let w = gw.weights[name].as_f32().unwrap();
        let c = &sw.hook.constraints[name];
        let mask = c.mask.as_ref().unwrap();
        assert!(w.iter().zip(mask).all(|(v, &k)| k || *v == 0.0), "{name}: a pruned weight moved");
        let cb = c.codebook.as_ref().unwrap();
        assert!(cb.centroids.len() <= 4, "{name}");
        for (i, v) in w.iter().enumerate().filter(|(i, _)| mask[*i]) {
            assert_eq!(*v, cb.centroids[cb.assign[i] as usize], "{name}[{i}] is off its centroid");
        }
    }
}

#[test]
fn soft_targets_are_the_teachers_logits_under_the_kd_loss() {
    let (xt, yt) = quadrants(64, 4);
    let train = Data { x: &xt, y: &yt };
    let teacher = trained(train);
    let cfg = TeacherConfig { temperature: 2.0, alpha: 0.7, ..Default::default() };
    let mut soft = SoftTargets::new(&cfg, &teacher, &teacher, train).unwrap();
    assert_eq!(soft.len(), 64);
    // A batch of samples 5, 9, 2: the loss is kd() against the teacher's own logits for them.
    let idx = [5usize, 9, 2];
    let per = 784;
    let x: Vec<f32> = idx.iter().flat_map(|&i| xt[i * per..(i + 1) * per].iter().copied()).collect();
    let m = Model::new(teacher.clone()).unwrap();
    let (t, _) = m.forward_taps(&x, 3, &[]).unwrap();
    let logits: Vec<f32> = (0..30).map(|i| (i as f32 * 0.37).sin()).collect();
    let labels: Vec<u32> = idx.iter().map(|&i| yt[i]).collect();
    let b = Batch { indices: &idx, labels: &labels, logits: &logits, classes: 10, taps: &[] };
    let got = soft.loss(&b).unwrap();
    let (loss, grad) = kd(&logits, &t, &labels, 2.0, 0.7);
    // (The teacher ran in batches of 64 there and of 3 here: equal up to float summation order.)
    assert!((got.loss - loss).abs() < 1e-5, "{} vs {loss}", got.loss);
    assert!(
        got.dlogits.iter().zip(&grad).all(|(a, b)| (a - b).abs() < 1e-5),
        "{:?} vs {grad:?}",
        got.dlogits
    );
    // Indices beyond the cached samples are an error, not a panic.
    let far = [64usize];
    let b = Batch { indices: &far, labels: &[0], logits: &logits[..10], classes: 10, taps: &[] };
    assert!(soft.loss(&b).is_err());
}

#[test]
fn teacher_settings_and_classes_are_checked() {
    let cases = [
        ("temperature = 0.0", "temperature must be > 0"),
        ("temperature = -1.0", "temperature must be > 0"),
        ("alpha = 1.5", "alpha must be in [0, 1]"),
        ("method = \"hint\"", "use \"kd\""),
        ("method = \"magic\"", "magic"),
        ("temprature = 2.0", "temprature"),
        ("model = \"\"", "model must be"),
    ];
    for (line, needle) in cases {
        let text = format!("[teacher]\n{line}\n{PASSES}");
        let e = Recipe::parse(&text).unwrap_err().to_string();
        assert!(e.contains(needle), "{line}: {e}");
    }
    let r = Recipe::parse(&format!("[teacher]\n{PASSES}")).unwrap();
    assert_eq!(r.teacher, Some(TeacherConfig::default()));
    assert!(r.teacher.as_ref().unwrap().is_self() && !r.teacher.as_ref().unwrap().compare);

    // A four-class teacher for a ten-class model.
    let mut four = Graph::new("four-classes", "input", &[1, 28, 28]);
    four.push("flat", Op::Flatten { axis: 1 }, &["input"]);
    four.add_weight("fc.weight", Tensor::f32(vec![4, 784], vec![0.01; 4 * 784]));
    four.add_weight("fc.bias", Tensor::f32(vec![4], vec![0.0; 4]));
    let op = Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true };
    four.push("fc", op, &["flat", "fc.weight", "fc.bias"]);
    four.outputs = vec![ValueInfo::batched("fc", &[4])];
    let (xt, yt) = quadrants(32, 5);
    let train = Data { x: &xt, y: &yt };
    let model = zoo::build("lenet-300-100", 0).unwrap();
    let file = Recipe::parse(&format!("[teacher]\nmodel = \"t.onnx\"\n{PASSES}")).unwrap();
    let mut ctx = Context { train, test: train, batch_size: 32, seed: 0, progress: &mut |_, _| {} };
    let e = run_with_teacher(&file, model.clone(), Some(&four), &mut ctx).err().unwrap().to_string();
    assert!(e.contains("4 output classes") && e.contains("10"), "{e}");
    // A file teacher the caller did not load.
    let e = run(&file, model, &mut ctx).err().unwrap().to_string();
    assert!(e.contains("t.onnx"), "{e}");
}

#[test]
fn the_shipped_kd_recipe_names_its_input_as_teacher() {
    let r = Recipe::parse(include_str!("../../../recipes/lenet-300-100-kd.toml")).unwrap();
    let t = r.teacher.unwrap();
    assert!(t.is_self() && t.compare);
    assert_eq!((t.temperature, t.alpha), (4.0, 0.9));
    let names: Vec<&str> = r.passes.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["prune", "share", "huffman"]);
}

#[test]
fn the_data_limited_kd_recipe_names_vgg_small_as_teacher() {
    let r = Recipe::parse(include_str!("../../../recipes/lenet-300-100-kd-limited.toml")).unwrap();
    let t = r.teacher.unwrap();
    assert!(!t.is_self() && t.compare);
    assert_eq!(t.model, "bench/results/distillation/vgg-small.onnx");
    assert_eq!((t.temperature, t.alpha), (4.0, 0.5));
    let names: Vec<&str> = r.passes.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["prune", "share", "huffman"]);
    // The teacher file is committed next to the results it made.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    assert!(std::path::Path::new(root).join(&t.model).is_file());
}
