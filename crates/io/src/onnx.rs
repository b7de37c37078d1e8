//! onnx (in progress)
