/// Splits one line into delimited fields, recording field bounds (no copies).
///
/// With `quoted` set, a field starting with `"` runs to the matching closing quote
/// (`""` inside is an escaped quote and stays in the field bytes); the bounds
/// exclude the surrounding quotes. Text consumers treat `"` as a word separator.
struct FieldSplitter {
    /// Field delimiter byte (`,` or tab or space).
    let delimiter: UInt8
    /// Whether CSV quoting is honoured.
    let quoted: Bool
    /// `starts[i]..<ends[i]` is field `i` of the last split line; valid for `0..<count`.
    private(set) var starts: [Int]
    /// End offsets matching `starts`.
    private(set) var ends: [Int]
    /// Number of fields in the last split line.
    private(set) var count = 0
    /// False when the last line had an unterminated quoted field.
    private(set) var wellFormed = true

    /// A splitter for `delimiter`; `capacity` is the largest field count kept (more are counted).
    init(delimiter: UInt8, quoted: Bool = false, capacity: Int = 16) {
        self.delimiter = delimiter
        self.quoted = quoted
        starts = [Int](repeating: 0, count: capacity)
        ends = [Int](repeating: 0, count: capacity)
    }

    /// Splits `line`; afterwards `count` is the number of fields (an empty line has one empty field).
    mutating func split(_ line: UnsafeBufferPointer<UInt8>) {
        var n = 0
        var i = 0
        let len = line.count
        wellFormed = true
        let cap = starts.count
        while true {
            var s = i
            var e: Int
            if quoted && i < len && line[i] == 0x22 {
                s = i + 1
                var j = s
                var closed = false
                while j < len {
                    if line[j] == 0x22 {
                        if j + 1 < len && line[j + 1] == 0x22 { j += 2; continue }
                        closed = true
                        break
                    }
                    j += 1
                }
                if !closed { wellFormed = false; e = len; i = len } else {
                    e = j
                    i = j + 1
                    if i < len && line[i] != delimiter { wellFormed = false }
                    while i < len && line[i] != delimiter { i += 1 }
                }
            } else {
                while i < len && line[i] != delimiter { i += 1 }
                e = i
            }
            if n < cap { starts[n] = s; ends[n] = e }
            n += 1
            if i >= len { break }
            i += 1 // skip the delimiter
        }
        count = n
    }

    /// Splits on runs of spaces (for whitespace-separated files); empty fields are dropped.
    mutating func splitWhitespace(_ line: UnsafeBufferPointer<UInt8>) {
        var n = 0
        var i = 0
        let len = line.count
        wellFormed = true
        while i < len {
            while i < len && (line[i] == 0x20 || line[i] == 0x09) { i += 1 }
            if i >= len { break }
            let s = i
            while i < len && line[i] != 0x20 && line[i] != 0x09 { i += 1 }
            if n == starts.count { grow() }
            starts[n] = s; ends[n] = i
            n += 1
        }
        count = n
    }

    /// Doubles the field capacity (whitespace lines such as S3-Rec sequences can be long).
    mutating func grow() {
        starts.append(contentsOf: repeatElement(0, count: starts.count))
        ends.append(contentsOf: repeatElement(0, count: ends.count))
    }
}
