import CBLAS
#if canImport(Glibc)
import Glibc
#endif

/// The scalar types layers run in: `Float` for training, `Double` for gradient checks.
///
/// Every matrix product goes through `gemm` (CBLAS `sgemm`/`dgemm`); elementwise math
/// goes through the static functions so one generic kernel serves both precisions.
public protocol Real: BinaryFloatingPoint, Sendable where RawSignificand: FixedWidthInteger {
    /// `C = alpha * op(A) * op(B) + beta * C`, row-major.
    /// - Parameters:
    ///   - a: (m × k) if `!transA`, else (k × m); row stride `lda`.
    ///   - b: (k × n) if `!transB`, else (n × k); row stride `ldb`.
    ///   - c: (m × n), row stride `ldc`.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
                     a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
                     beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    static func sqrt(_ x: Self) -> Self
    static func log1p(_ x: Self) -> Self
}

extension Float: Real {
    @inlinable
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    @inlinable public static func exp(_ x: Float) -> Float { expf(x) }
    @inlinable public static func log(_ x: Float) -> Float { logf(x) }
    @inlinable public static func tanh(_ x: Float) -> Float { tanhf(x) }
    @inlinable public static func sqrt(_ x: Float) -> Float { sqrtf(x) }
    @inlinable public static func log1p(_ x: Float) -> Float { log1pf(x) }
}

extension Double: Real {
    @inlinable
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
                            a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                            beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    @inlinable public static func exp(_ x: Double) -> Double { Glibc.exp(x) }
    @inlinable public static func log(_ x: Double) -> Double { Glibc.log(x) }
    @inlinable public static func tanh(_ x: Double) -> Double { Glibc.tanh(x) }
    @inlinable public static func sqrt(_ x: Double) -> Double { Glibc.sqrt(x) }
    @inlinable public static func log1p(_ x: Double) -> Double { Glibc.log1p(x) }
}

/// Pins OpenBLAS to `n` threads. Heed parallelises across workers and servers instead
/// (PLATFORM.md: two OpenBLAS threads are erratic on this machine).
public func setBLASThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
