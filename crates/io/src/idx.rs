//! IDX data sets in the MNIST layout, gzipped or raw.
//!
//! An IDX file is a big-endian header — two zero bytes, a dtype byte (`0x08` = u8), a dimension
//! count — then one big-endian `u32` per dimension, then the elements row-major. MNIST uses
//! `0x00000803` for images `[N, rows, cols]` and `0x00000801` for labels `[N]`.
//!
//! Design choices:
//! - Gzip is detected by its magic bytes (`1f 8b`), not by the file name, so a renamed file reads.
//! - The header is decoded first and the body is read with a limit of exactly the declared size
//!   plus one byte: a lying header cannot make us allocate more than the data that is really
//!   there, and both truncation and trailing bytes are reported as [`IoError::Corrupt`].
//! - Pixels are normalised through a 256-entry lookup table, so loading the 60,000 MNIST training
//!   images costs one gunzip and one table lookup per pixel.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::IoError;

/// Per-pixel normalisation applied as `(x / 255 - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    /// Mean subtracted after scaling to `[0, 1]`.
    pub mean: f32,
    /// Standard deviation divided by after subtracting the mean.
    pub std: f32,
}

impl Normalization {
    /// The MNIST training-set mean and standard deviation (0.1307, 0.3081) that PyTorch examples
    /// use (`transforms.Normalize((0.1307,), (0.3081,))`), so models trained there see the same
    /// inputs here.
    pub const MNIST: Normalization = Normalization { mean: 0.1307, std: 0.3081 };

    /// Scale to `[0, 1]` only (`transforms.ToTensor()` without `Normalize`).
    pub const UNIT: Normalization = Normalization { mean: 0.0, std: 1.0 };

    /// The 256 normalised values a u8 pixel can take.
    fn table(self) -> [f32; 256] {
        let mut t = [0.0; 256];
        for (v, out) in t.iter_mut().enumerate() {
            *out = (v as f32 / 255.0 - self.mean) / self.std;
        }
        t
    }
}

impl Default for Normalization {
    /// [`Normalization::MNIST`].
    fn default() -> Self {
        Normalization::MNIST
    }
}

/// Which half of an MNIST-layout directory to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `train-images-idx3-ubyte` and `train-labels-idx1-ubyte` (60,000 samples for MNIST).
    Train,
    /// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (10,000 samples for MNIST).
    Test,
}

impl Split {
    /// File name prefix of the split.
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// A labelled image data set held in memory, ready to feed a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Normalised pixels of every sample, `N * C * H * W` values, sample-major (NCHW).
    pub images: Vec<f32>,
    /// Class label of every sample.
    pub labels: Vec<u32>,
    /// Shape of one sample, `[C, H, W]` (`[1, 28, 28]` for MNIST).
    pub sample_shape: Vec<usize>,
    /// Number of classes: the largest label plus one (of the full file, kept by [`Dataset::limit`]).
    pub classes: usize,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if the data set holds no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values in one sample (`C * H * W`).
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The pixels of samples `start..end`, `(end - start) * sample_len()` values. Panics if the
    /// range is out of bounds, like slice indexing.
    pub fn images_of(&self, range: std::ops::Range<usize>) -> &[f32] {
        let s = self.sample_len();
        &self.images[range.start * s..range.end * s]
    }

    /// The first `n` samples (all of them if there are fewer). `classes` is kept, so a model's
    /// output width still matches.
    pub fn limit(mut self, n: usize) -> Dataset {
        let n = n.min(self.len());
        self.images.truncate(n * self.sample_len());
        self.labels.truncate(n);
        self
    }
}

/// Reads one split of an MNIST-layout directory: `train-*` or `t10k-*` images and labels, each
/// either raw (`...-ubyte`) or gzipped (`...-ubyte.gz`); the raw file is used if both exist.
pub fn load_dir(dir: &Path, split: Split, norm: Normalization) -> Result<Dataset, IoError> {
    let meta =
        std::fs::metadata(dir).map_err(|e| IoError::Io { path: dir.display().to_string(), source: e })?;
    if !meta.is_dir() {
        return Err(IoError::Io {
            path: dir.display().to_string(),
            source: std::io::Error::other("not a directory (expected a directory of IDX files)"),
        });
    }
    let images_path = find(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
    let labels_path = find(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
    let images = read_images(&images_path)?;
    let labels = read_labels(&labels_path)?;
    if images.count != labels.len() {
        return Err(IoError::Mismatch {
            path: format!("{} and {}", images_path.display(), labels_path.display()),
            detail: format!("{} images but {} labels", images.count, labels.len()),
        });
    }
    let table = norm.table();
    Ok(Dataset {
        images: images.pixels.iter().map(|&p| table[p as usize]).collect(),
        classes: labels.iter().max().map_or(0, |&m| m as usize + 1),
        labels: labels.into_iter().map(u32::from).collect(),
        sample_shape: vec![1, images.rows, images.cols],
    })
}

/// `dir/name` if it exists, else `dir/name.gz`, else an error naming both.
fn find(dir: &Path, name: &str) -> Result<PathBuf, IoError> {
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if raw.is_file() {
        Ok(raw)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(IoError::Io {
            path: dir.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("neither {name} nor {name}.gz found in this directory"),
            ),
        })
    }
}

/// The raw u8 images of an IDX3 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` pixels, row-major.
    pub pixels: Vec<u8>,
}

/// Reads an IDX u8 image file (magic `0x00000803`), gzipped or raw.
pub fn read_images(path: &Path) -> Result<IdxImages, IoError> {
    let bytes = read_file(path)?;
    parse_images(&bytes, &path.display().to_string())
}

/// Reads an IDX u8 label file (magic `0x00000801`), gzipped or raw.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IoError> {
    let bytes = read_file(path)?;
    parse_labels(&bytes, &path.display().to_string())
}

/// Parses the bytes of an IDX u8 image file, gzipped or raw; `path` names it in errors.
pub fn parse_images(bytes: &[u8], path: &str) -> Result<IdxImages, IoError> {
    let (dims, pixels) = decode(bytes, path, 3, "images [N, rows, cols]")?;
    if dims[1] == 0 || dims[2] == 0 {
        return Err(corrupt(path, format!("images of size {}x{}", dims[1], dims[2])));
    }
    Ok(IdxImages { count: dims[0], rows: dims[1], cols: dims[2], pixels })
}

/// Parses the bytes of an IDX u8 label file, gzipped or raw; `path` names it in errors.
pub fn parse_labels(bytes: &[u8], path: &str) -> Result<Vec<u8>, IoError> {
    Ok(decode(bytes, path, 1, "labels [N]")?.1)
}

fn read_file(path: &Path) -> Result<Vec<u8>, IoError> {
    std::fs::read(path).map_err(|e| IoError::Io { path: path.display().to_string(), source: e })
}

fn corrupt(path: &str, detail: String) -> IoError {
    IoError::Corrupt { path: path.to_string(), detail }
}

/// Decodes a u8 IDX file of `ndims` dimensions: returns the dimensions and the elements.
fn decode(bytes: &[u8], path: &str, ndims: u8, what: &str) -> Result<(Vec<usize>, Vec<u8>), IoError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        decode_from(MultiGzDecoder::new(bytes), path, ndims, what, true)
    } else {
        decode_from(bytes, path, ndims, what, false)
    }
}

fn decode_from<R: Read>(
    mut r: R,
    path: &str,
    ndims: u8,
    what: &str,
    gz: bool,
) -> Result<(Vec<usize>, Vec<u8>), IoError> {
    let read_err = |e: std::io::Error, part: &str| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            corrupt(path, format!("file ends inside the {part}"))
        } else if gz {
            corrupt(path, format!("bad gzip stream: {e}"))
        } else {
            IoError::Io { path: path.to_string(), source: e }
        }
    };
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).map_err(|e| read_err(e, "4-byte IDX header"))?;
    let expected = u32::from_be_bytes([0, 0, 0x08, ndims]);
    if magic[0] != 0 || magic[1] != 0 {
        return Err(corrupt(
            path,
            format!(
                "not an IDX file: magic 0x{:08x}, expected 0x{expected:08x} (u8 {what})",
                u32::from_be_bytes(magic)
            ),
        ));
    }
    let dtype = match magic[2] {
        0x08 => "u8",
        0x09 => "i8",
        0x0b => "i16",
        0x0c => "i32",
        0x0d => "f32",
        0x0e => "f64",
        other => return Err(corrupt(path, format!("unknown IDX element type 0x{other:02x}"))),
    };
    if magic[2] != 0x08 || magic[3] != ndims {
        return Err(IoError::Unsupported {
            path: path.to_string(),
            detail: format!(
                "IDX {dtype} data with {} dimensions (magic 0x{:08x}); expected u8 {what} (magic 0x{expected:08x})",
                magic[3],
                u32::from_be_bytes(magic)
            ),
        });
    }
    let mut raw_dims = vec![0u8; 4 * ndims as usize];
    r.read_exact(&mut raw_dims).map_err(|e| read_err(e, "dimension sizes"))?;
    let dims: Vec<usize> =
        raw_dims.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n < usize::MAX)
        .ok_or_else(|| corrupt(path, format!("dimensions {dims:?} overflow")))?;
    // Read at most one byte more than declared; never trust `len` for the allocation.
    let mut data = Vec::with_capacity(len.min(1 << 26));
    (&mut r).take(len as u64 + 1).read_to_end(&mut data).map_err(|e| read_err(e, "data"))?;
    if data.len() < len {
        return Err(corrupt(
            path,
            format!("truncated: dimensions {dims:?} declare {len} bytes of data, found {}", data.len()),
        ));
    }
    if data.len() > len {
        return Err(corrupt(
            path,
            format!("trailing bytes after the {len} bytes that dimensions {dims:?} declare"),
        ));
    }
    Ok((dims, data))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A raw IDX file: magic `0x000008{ndims}`, the dimensions, then `data`.
    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Three 2x2 images with pixel values 0..12 and labels 0, 2, 1.
    fn images3() -> Vec<u8> {
        idx(&[3, 2, 2], &(0..12).collect::<Vec<u8>>())
    }
    fn labels3() -> Vec<u8> {
        idx(&[3], &[0, 2, 1])
    }

    fn write_dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        dir
    }

    fn detail(e: IoError) -> String {
        e.to_string()
    }

    #[test]
    fn parses_raw_images_and_labels() {
        let im = parse_images(&images3(), "x").unwrap();
        assert_eq!((im.count, im.rows, im.cols), (3, 2, 2));
        assert_eq!(im.pixels, (0..12).collect::<Vec<u8>>());
        assert_eq!(parse_labels(&labels3(), "y").unwrap(), vec![0, 2, 1]);
    }

    #[test]
    fn gzip_is_detected_by_magic_not_name() {
        let im = parse_images(&gzip(&images3()), "no-extension").unwrap();
        assert_eq!(im.pixels, (0..12).collect::<Vec<u8>>());
        assert_eq!(parse_labels(&gzip(&labels3()), "z").unwrap(), vec![0, 2, 1]);
    }

    #[test]
    fn load_dir_normalises_and_counts_classes() {
        let dir = write_dir(&[
            ("train-images-idx3-ubyte.gz", &gzip(&images3())),
            ("train-labels-idx1-ubyte", &labels3()),
        ]);
        let ds = load_dir(dir.path(), Split::Train, Normalization::UNIT).unwrap();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.sample_shape, vec![1, 2, 2]);
        assert_eq!(ds.classes, 3);
        assert_eq!(ds.labels, vec![0, 2, 1]);
        assert_eq!(ds.images[5], 5.0 / 255.0);
        assert_eq!(ds.images_of(1..2), &ds.images[4..8]);

        let dir =
            write_dir(&[("t10k-images-idx3-ubyte", &images3()), ("t10k-labels-idx1-ubyte", &labels3())]);
        let ds = load_dir(dir.path(), Split::Test, Normalization::default()).unwrap();
        let m = Normalization::MNIST;
        assert_eq!(ds.images[0], -m.mean / m.std);
        assert!((ds.images[11] - (11.0 / 255.0 - 0.1307) / 0.3081).abs() < 1e-6);

        let small = ds.limit(2);
        assert_eq!((small.len(), small.images.len(), small.classes), (2, 8, 3));
        assert_eq!(small.clone().limit(10), small);
        assert!(small.limit(0).is_empty());
    }

    #[test]
    fn bad_magic_is_rejected() {
        let mut b = images3();
        b[0] = 0x50; // e.g. a PNG or text file
        let e = detail(parse_images(&b, "img").unwrap_err());
        assert!(e.contains("img") && e.contains("not an IDX file"), "{e}");

        // A valid IDX header of the wrong kind: labels where images are expected.
        let e = parse_images(&labels3(), "lbl").unwrap_err();
        assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
        let mut b = labels3();
        b[2] = 0x0d; // f32 labels
        let e = detail(parse_labels(&b, "lbl").unwrap_err());
        assert!(e.contains("f32"), "{e}");
        b[2] = 0x42;
        assert!(matches!(parse_labels(&b, "lbl"), Err(IoError::Corrupt { .. })));
    }

    #[test]
    fn truncated_files_are_corrupt() {
        let full = images3();
        for cut in [0, 3, 4, 10, full.len() - 1] {
            let e = parse_images(&full[..cut], "train-images").unwrap_err();
            assert!(matches!(e, IoError::Corrupt { .. }), "cut {cut}: {e}");
            assert!(e.to_string().starts_with("train-images:"), "{e}");
        }
        // Truncated gzip stream: cut inside the compressed data.
        let gz = gzip(&full);
        let e = parse_images(&gz[..gz.len() - 12], "g").unwrap_err();
        assert!(matches!(e, IoError::Corrupt { .. }), "{e}");
        // Trailing garbage.
        let mut long = full.clone();
        long.push(7);
        assert!(detail(parse_images(&long, "t").unwrap_err()).contains("trailing"));
    }

    #[test]
    fn huge_declared_sizes_do_not_allocate_or_overflow() {
        let b = idx(&[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3]);
        let e = detail(parse_images(&b, "big").unwrap_err());
        assert!(e.contains("overflow"), "{e}");
        let b = idx(&[u32::MAX, 1 << 16, 1], &[1, 2, 3]);
        let e = detail(parse_images(&b, "big").unwrap_err());
        assert!(e.contains("truncated"), "{e}");
        let b = idx(&[2, 0, 5], &[]);
        assert!(matches!(parse_images(&b, "zero"), Err(IoError::Corrupt { .. })));
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = write_dir(&[
            ("train-images-idx3-ubyte", &images3()),
            ("train-labels-idx1-ubyte.gz", &gzip(&idx(&[2], &[0, 1]))),
        ]);
        let e = load_dir(dir.path(), Split::Train, Normalization::MNIST).unwrap_err();
        assert!(matches!(e, IoError::Mismatch { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("train-images-idx3-ubyte and "), "{msg}");
        assert!(msg.contains("train-labels-idx1-ubyte.gz") && msg.contains("3 images but 2 labels"), "{msg}");
    }

    #[test]
    fn missing_dir_or_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = load_dir(&missing, Split::Train, Normalization::MNIST).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");

        let e = load_dir(dir.path(), Split::Test, Normalization::MNIST).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("t10k-images-idx3-ubyte.gz"), "{msg}");

        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = load_dir(&file, Split::Test, Normalization::MNIST).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    /// The embedded MNIST files load with the expected sizes.
    #[test]
    fn embedded_mnist_test_split() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
        let ds = load_dir(&dir, Split::Test, Normalization::MNIST).unwrap();
        assert_eq!((ds.len(), ds.sample_shape.as_slice(), ds.classes), (10_000, &[1, 28, 28][..], 10));
        assert_eq!(ds.images.len(), 10_000 * 784);
    }
}
