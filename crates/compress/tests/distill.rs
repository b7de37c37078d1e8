//! Distillation through the library: a pruned student recovering under a teacher with its mask
//! held (distillation as the fine-tuning step of a compression method), a hint through a linear
//! regressor between fully connected layers, and the configuration checks.

mod common;

use common::quadrants;
use deepshrink_compress::distill::{distill, plan, DistillConfig, Method};
use deepshrink_compress::{Constraint, ConstraintHook};
use deepshrink_engine::{evaluate, zoo, Data, Model, NoHook, TrainConfig};

fn trained_teacher(train: Data) -> deepshrink_graph::Graph {
    let mut m = Model::new(zoo::build("lenet-300-100", 3).unwrap()).unwrap();
    let cfg = TrainConfig { epochs: 2, batch_size: 32, ..Default::default() };
    deepshrink_engine::train(&mut m, train, &cfg, &mut NoHook, &mut |_| {}).unwrap();
    m.to_graph()
}

#[test]
fn pruned_student_recovers_under_the_teacher_with_its_mask_held() {
    let (xt, yt) = quadrants(512, 1);
    let (xs, ys) = quadrants(200, 2);
    let (train, test) = (Data { x: &xt, y: &yt }, Data { x: &xs, y: &ys });
    let teacher = trained_teacher(train);
    // The student: cnn-tiny with 90% of fc1 pruned (every entry whose index is not a multiple of 10).
    let mut student = zoo::build("cnn-tiny", 5).unwrap();
    let w = student.weights.get_mut("fc1.weight").unwrap().as_f32_mut().unwrap();
    let mask: Vec<bool> = (0..w.len()).map(|i| i % 10 == 0).collect();
    w.iter_mut().zip(&mask).for_each(|(v, &k)| *v = if k { *v } else { 0.0 });
    let mut hook = ConstraintHook::default();
    hook.constraints
        .insert("fc1.weight".into(), Constraint { mask: Some(mask.clone()), ..Default::default() });
    let cfg = DistillConfig { method: Method::Kd, ..Default::default() };
    let tcfg = TrainConfig { epochs: 2, batch_size: 32, ..Default::default() };
    let (g, stats) = distill(&teacher, student, train, &cfg, &tcfg, &mut hook, &mut |_| {}).unwrap();
    assert_eq!(stats.len(), 2);
    let w = g.weights["fc1.weight"].as_f32().unwrap();
    assert!(w.iter().zip(&mask).all(|(v, &k)| k || *v == 0.0), "pruned entries stay exactly zero");
    let acc = evaluate(&Model::new(g).unwrap(), test, 100, &mut |_| {}).unwrap().top1;
    assert!(acc > 0.95, "distilled pruned student {acc}");
}

#[test]
fn hint_between_fully_connected_layers_uses_a_linear_regressor() {
    let (xt, yt) = quadrants(256, 3);
    let train = Data { x: &xt, y: &yt };
    let teacher = trained_teacher(train);
    let student = zoo::build("cnn-tiny", 1).unwrap();
    // cnn-tiny's relu6 is its 40-wide hidden layer, lenet-300-100's relu2 its 300-wide one.
    let cfg = DistillConfig {
        method: Method::Hint,
        hint_student: "relu6".into(),
        hint_teacher: "relu2".into(),
        ..Default::default()
    };
    let p = plan(&cfg, &teacher, &student).unwrap();
    assert_eq!(p.hint, Some(("relu6".into(), "relu2".into())));
    let tcfg = TrainConfig { epochs: 2, batch_size: 32, ..Default::default() };
    let (g, stats) =
        distill(&teacher, student.clone(), train, &cfg, &tcfg, &mut NoHook, &mut |_| {}).unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(g.param_count(), student.param_count(), "regressor removed");
    assert_eq!(g.nodes.len(), student.nodes.len());
    // Without a regressor the 40- and 300-wide layers do not fit.
    let no_reg = DistillConfig { regressor: false, ..cfg };
    let e = plan(&no_reg, &teacher, &student).unwrap_err().to_string();
    assert!(e.contains("need a regressor"), "{e}");
}

#[test]
fn configuration_is_checked() {
    let t = zoo::build("vgg-small", 0).unwrap();
    let s = zoo::build("cnn-tiny", 0).unwrap();
    let with = |f: &dyn Fn(&mut DistillConfig)| {
        let mut c = DistillConfig::default();
        f(&mut c);
        plan(&c, &t, &s).map_err(|e| e.to_string())
    };
    assert!(with(&|c| c.temperature = 0.0).unwrap_err().contains("temperature must be > 0"));
    assert!(with(&|c| c.temperature = f32::NAN).unwrap_err().contains("temperature"));
    assert!(with(&|c| c.alpha = 1.01).unwrap_err().contains("alpha must be in [0, 1]"));
    assert!(with(&|c| c.beta = -1.0).unwrap_err().contains("beta"));
    // Automatic pairing: the last feature map of each spatial size (28, 14, 7).
    let at = with(&|c| c.method = Method::At).unwrap();
    let want = [("relu1", "relu2"), ("relu3", "relu5"), ("pool4", "pool6")];
    let got: Vec<(&str, &str)> = at.at_pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(got, want);
    let hint = with(&|c| c.method = Method::Hint).unwrap();
    assert_eq!(hint.hint, Some(("relu3".into(), "relu5".into())));
    // Unknown keys are rejected in TOML.
    assert!(toml::from_str::<DistillConfig>("temprature = 2.0").is_err());
    let c: DistillConfig = toml::from_str("method = \"at\"\nbeta = 500.0").unwrap();
    assert_eq!((c.method, c.beta, c.alpha), (Method::At, 500.0, 0.9));
}
