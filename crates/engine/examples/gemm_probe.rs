fn main() {
    for &(m, k, n) in &[(50usize, 500usize, 8192usize), (20, 25, 73728), (128, 800, 500), (500, 8192, 50)] {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0f32; m * n];
        for par in [gemm::Parallelism::None, gemm::Parallelism::Rayon(2)] {
            for swap in [false, true] {
                let t = std::time::Instant::now();
                for _ in 0..10 {
                    unsafe {
                        if swap {
                            gemm::gemm(
                                n,
                                m,
                                k,
                                c.as_mut_ptr(),
                                n as isize,
                                1,
                                false,
                                b.as_ptr(),
                                n as isize,
                                1,
                                a.as_ptr(),
                                k as isize,
                                1,
                                1.0,
                                1.0,
                                false,
                                false,
                                false,
                                par,
                            );
                        } else {
                            gemm::gemm(
                                m,
                                n,
                                k,
                                c.as_mut_ptr(),
                                1,
                                n as isize,
                                false,
                                a.as_ptr(),
                                1,
                                k as isize,
                                b.as_ptr(),
                                1,
                                n as isize,
                                1.0,
                                1.0,
                                false,
                                false,
                                false,
                                par,
                            );
                        }
                    }
                }
                let dt = t.elapsed().as_secs_f64() / 10.0;
                println!(
                    "{m}x{k}x{n} {:?} swap={swap}: {:.2} ms, {:.1} GFLOPS",
                    par,
                    dt * 1e3,
                    2.0 * (m * k * n) as f64 / dt / 1e9
                );
            }
        }
    }
}
