#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Parsers for numbers and dates straight from line bytes: no `String` per field.
///
/// Every function reads `b[start..<end]` and returns nil when the field is not
/// exactly of the expected form (empty, stray characters, overflow).
public enum ByteParse {
    /// A non-negative decimal integer of at most 20 digits that fits in UInt64.
    @inlinable
    public static func uint64(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> UInt64? {
        guard end > start else { return nil }
        var v: UInt64 = 0
        var i = start
        while i < end {
            let d = b[i] &- 48
            guard d < 10 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(d))
            if o1 || o2 { return nil }
            v = s
            i += 1
        }
        return v
    }

    /// A decimal integer with an optional leading `-` or `+`.
    @inlinable
    public static func int64(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int64? {
        guard end > start else { return nil }
        var s = start
        var negative = false
        if b[s] == UInt8(ascii: "-") { negative = true; s += 1 } else if b[s] == UInt8(ascii: "+") { s += 1 }
        guard let u = uint64(b, s, end) else { return nil }
        if negative { return u <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- u) : nil }
        return u <= UInt64(Int64.max) ? Int64(u) : nil
    }

    /// A decimal number: `[-+]digits[.digits][(e|E)[-+]digits]` (also `.5`, `5.`).
    ///
    /// Mantissas of up to 19 digits are converted exactly and scaled once by a power of
    /// ten (within one rounding of `strtod`); longer ones go through `strtod`.
    @inlinable
    public static func double(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
        guard end > start else { return nil }
        var i = start
        var negative = false
        if b[i] == UInt8(ascii: "-") { negative = true; i += 1 } else if b[i] == UInt8(ascii: "+") { i += 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        var scale = 0
        var sawDigit = false
        while i < end, b[i] &- 48 < 10 {
            if digits < 19 { mantissa = mantissa &* 10 &+ UInt64(b[i] &- 48); if mantissa > 0 { digits += 1 } } else { scale += 1 }
            sawDigit = true; i += 1
        }
        if i < end, b[i] == UInt8(ascii: ".") {
            i += 1
            while i < end, b[i] &- 48 < 10 {
                if digits < 19 { mantissa = mantissa &* 10 &+ UInt64(b[i] &- 48); if mantissa > 0 { digits += 1 }; scale -= 1 }
                sawDigit = true; i += 1
            }
        }
        guard sawDigit else { return nil }
        if i < end, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            guard let e = int64(b, i + 1, end), abs(e) < 400 else { return nil }
            scale += Int(e)
            i = end
        }
        guard i == end else { return nil }
        if digits >= 19 { return strtodFallback(b, start, end) }
        var v = Double(mantissa)
        if scale != 0 {
            if scale > 0 { v *= pow10(scale) } else { v /= pow10(-scale) }
        }
        return negative ? -v : v
    }

    /// 10^n for small n exactly, larger n through `pow`.
    @inlinable
    static func pow10(_ n: Int) -> Double {
        let table: (Double, Double, Double, Double, Double, Double, Double, Double) = (1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7)
        if n < 8 {
            return withUnsafeBytes(of: table) { $0.load(fromByteOffset: n * 8, as: Double.self) }
        }
        return pow(10.0, Double(n))
    }

    /// `strtod` on a copied, NUL-terminated field (mantissas of 19+ digits).
    @usableFromInline
    static func strtodFallback(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
        var tmp = [CChar](repeating: 0, count: end - start + 1)
        for i in start..<end { tmp[i - start] = CChar(bitPattern: b[i]) }
        return tmp.withUnsafeMutableBufferPointer { p -> Double? in
            var endp: UnsafeMutablePointer<CChar>?
            let v = strtod(p.baseAddress!, &endp)
            // Safe: endp points into `tmp` when strtod succeeds.
            guard let e = endp, e - p.baseAddress! == end - start else { return nil }
            return v
        }
    }

    /// A date or date-time as Unix seconds, read as UTC:
    /// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` or with `T` instead of the space and an optional `Z`.
    @inlinable
    public static func dateTime(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int64? {
        var e = end
        if e > start, b[e - 1] == UInt8(ascii: "Z") { e -= 1 }
        let n = e - start
        guard n == 10 || n == 16 || n == 19 else { return nil }
        @inline(__always) func num(_ o: Int, _ len: Int) -> Int? {
            var v = 0
            for k in 0..<len {
                let d = b[start + o + k] &- 48
                guard d < 10 else { return nil }
                v = v * 10 + Int(d)
            }
            return v
        }
        guard b[start + 4] == UInt8(ascii: "-"), b[start + 7] == UInt8(ascii: "-"),
              let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2),
              (1...12).contains(mo), (1...31).contains(d) else { return nil }
        var seconds = 0
        if n >= 16 {
            let sep = b[start + 10]
            guard sep == UInt8(ascii: " ") || sep == UInt8(ascii: "T"), b[start + 13] == UInt8(ascii: ":"),
                  let h = num(11, 2), let mi = num(14, 2), h < 24, mi < 60 else { return nil }
            seconds = h * 3600 + mi * 60
            if n == 19 {
                guard b[start + 16] == UInt8(ascii: ":"), let s = num(17, 2), s < 61 else { return nil }
                seconds += s
            }
        }
        return Int64(daysFromCivil(y, mo, d)) * 86_400 + Int64(seconds)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    @inlinable
    public static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// A timestamp field: Unix seconds as an integer, or a date/date-time (`dateTime`).
    @inlinable
    public static func timestamp(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int64? {
        if let v = int64(b, start, end) { return v }
        return dateTime(b, start, end)
    }
}
