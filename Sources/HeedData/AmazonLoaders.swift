import HeedCore

/// Loaders for the Amazon 2014 review datasets (S3-Rec, SASRec and ReChorus versions).
package enum AmazonLoaders {
    /// S3-Rec file stem of each Amazon category dataset.
    static func s3recStem(_ d: PrepareOptions.Dataset) -> String {
        switch d {
        case .amazonSports: "Sports_and_Outdoors"
        case .amazonToys: "Toys_and_Games"
        default: "Beauty"
        }
    }

    /// S3-Rec: `<Stem>.txt` (one user per line: `user item item …`, oldest first) plus
    /// `<Stem>_item2attributes.json` (`{"item": [attr, …]}`; brand first, then category-path
    /// tokens). The item's category is its last attribute (the most specific path token).
    static func loadS3Rec(_ o: PrepareOptions, log: inout BadRowLog, spill: EventSpill? = nil) throws -> RawDataset {
        let stem = s3recStem(o.dataset)
        var d = RawDataset(name: o.dataset.rawValue, spill: spill)
        d.hasTimestamps = false
        let seqPath = try SourceResolver.resolve(input: o.input, override: o.events, candidates: SourceResolver.gzOrPlain(stem + ".txt"),
                                                 role: "sequence", dataset: o.dataset.rawValue, inputMayBeFile: true)
        try d.addSource(role: "events", path: seqPath)
        try readUserLines(path: seqPath, into: &d, log: &log, minItems: 1)
        let attrPath = try SourceResolver.optional(input: o.input, override: o.items, candidates: SourceResolver.gzOrPlain(stem + "_item2attributes.json"))
        if let attrPath {
            try d.addSource(role: "items", path: attrPath)
            try readItemAttributes(path: attrPath, into: &d, maxAttributes: o.maxAttributes)
            d.hasAttributes = true
            d.hasCategories = true
        }
        return d
    }

    /// SASRec `Video.txt`: `user item` per line, grouped by user, chronological.
    static func loadSASRec(_ o: PrepareOptions, log: inout BadRowLog, spill: EventSpill? = nil) throws -> RawDataset {
        var d = RawDataset(name: o.dataset.rawValue, spill: spill)
        d.hasTimestamps = false
        let path = try SourceResolver.resolve(input: o.input, override: o.events, candidates: SourceResolver.gzOrPlain("Video.txt"),
                                              role: "events", dataset: o.dataset.rawValue, inputMayBeFile: true)
        try d.addSource(role: "events", path: path)
        var splitter = FieldSplitter(delimiter: 0x20, capacity: 4)
        var position: [Int64] = []
        try LineReader(path: path).forEachLine(expected: "lines 'user_id item_id'") { line, n in
            splitter.splitWhitespace(line)
            if splitter.count == 0 { return true }
            d.rowsRead += 1
            guard splitter.count == 2 else {
                try log.report(.wrongColumnCount, file: path, line: n, "wrong column count: expected 2 fields (user_id item_id), found \(splitter.count)")
                return true
            }
            guard let u = ByteParse.uint64(line, splitter.starts[0], splitter.ends[0]),
                  let i = ByteParse.uint64(line, splitter.starts[1], splitter.ends[1]) else {
                try log.report(.nonNumericID, file: path, line: n, "non-numeric id: expected integer user_id and item_id, found \(quoteField(line, splitter.starts[0], splitter.ends[1]))")
                return true
            }
            let ui = d.user(u), ii = d.item(i)
            if ui == position.count { position.append(0) }
            try d.addEvent(user: ui, item: ii, type: .rating, time: position[ui])
            position[ui] += 1
            return true
        }
        return d
    }

    /// Reads S3-Rec style lines `user item item …`; the time of each event is its position.
    package static func readUserLines(path: String, into d: inout RawDataset, log: inout BadRowLog, minItems: Int) throws {
        var splitter = FieldSplitter(delimiter: 0x20, capacity: 256)
        var position: [Int64] = []
        try LineReader(path: path).forEachLine(expected: "lines 'user_id item_id item_id …'") { line, n in
            splitter.splitWhitespace(line)
            if splitter.count == 0 { return true }
            guard splitter.count >= 1 + minItems else {
                try log.report(.wrongColumnCount, file: path, line: n, "wrong column count: expected a user id and at least \(minItems) item id, found \(splitter.count) field(s)")
                return true
            }
            guard let u = ByteParse.uint64(line, splitter.starts[0], splitter.ends[0]) else {
                try log.report(.nonNumericID, file: path, line: n, "non-numeric user id \(quoteField(line, splitter.starts[0], splitter.ends[0])) (expected an integer)")
                return true
            }
            for f in 1..<splitter.count where ByteParse.uint64(line, splitter.starts[f], splitter.ends[f]) == nil {
                try log.report(.nonNumericID, file: path, line: n, "non-numeric item id \(quoteField(line, splitter.starts[f], splitter.ends[f])) in field \(f + 1) (expected an integer)")
                return true
            }
            let ui = d.user(u)
            if ui == position.count { position.append(0) }
            for f in 1..<splitter.count {
                let i = d.item(ByteParse.uint64(line, splitter.starts[f], splitter.ends[f])!)
                try d.addEvent(user: ui, item: i, type: .rating, time: position[ui])
                position[ui] += 1
                d.rowsRead += 1
            }
            return true
        }
    }

    /// Reads `{"item": [attr, …], …}`; errors name the byte offset.
    static func readItemAttributes(path: String, into d: inout RawDataset, maxAttributes: Int) throws {
        d.padItemTables()
        var text: [UInt8] = []
        try LineReader(path: path).forEachLine(expected: "a JSON object {\"item_id\": [attribute ids]}") { line, _ in
            text.append(contentsOf: line)
            text.append(0x0A)
            return true
        }
        try text.withUnsafeBufferPointer { b in
            var p = JSONScanner(bytes: b, path: path)
            try p.expect(UInt8(ascii: "{"))
            if try p.peek() == UInt8(ascii: "}") { return }
            while true {
                let (ks, ke) = try p.string()
                guard let item = ByteParse.uint64(b, ks, ke) else {
                    throw p.error("item id key \(quoteField(b, ks, ke)) is not an integer")
                }
                try p.expect(UInt8(ascii: ":"))
                let attrs = try p.integerArray()
                if let ii = d.items.find(item) {
                    d.itemAttributes[ii] = attrs.prefix(maxAttributes).map { FeatureGroup.attribute.key($0) }
                    if let last = attrs.last { d.itemCategory[ii] = last }
                }
                let c = try p.next()
                if c == UInt8(ascii: "}") { break }
                guard c == UInt8(ascii: ",") else { throw p.error("expected ',' or '}'") }
            }
        }
    }

    /// ReChorus Grocery: `train.csv` (TSV `user_id item_id time`) and `item_meta.csv`
    /// (TSV `item_id i_category r_complement r_substitute`, lists as `[1, 2]`; category 0 = missing).
    static func loadReChorus(_ o: PrepareOptions, log: inout BadRowLog, spill: EventSpill? = nil) throws -> RawDataset {
        var d = RawDataset(name: o.dataset.rawValue, spill: spill)
        let path = try SourceResolver.resolve(input: o.input, override: o.events, candidates: SourceResolver.gzOrPlain("train.csv"),
                                              role: "events", dataset: o.dataset.rawValue, inputMayBeFile: true)
        try d.addSource(role: "events", path: path)
        let r = DelimitedReader(path: path, delimiter: 0x09, header: .exact(["user_id", "item_id", "time"]),
                                describe: "tab-separated user_id, item_id, time")
        let parsed = try r.read(log: &log) { line, f, n, log in
            guard let u = ByteParse.uint64(line, f.starts[0], f.ends[0]), let i = ByteParse.uint64(line, f.starts[1], f.ends[1]) else {
                try log.report(.nonNumericID, file: path, line: n, "non-numeric id: expected integer user_id and item_id, found \(quoteField(line, f.starts[0], f.ends[1]))")
                return
            }
            guard let t = ByteParse.timestamp(line, f.starts[2], f.ends[2]) else {
                try log.report(.nonNumericTimestamp, file: path, line: n, "bad timestamp \(quoteField(line, f.starts[2], f.ends[2])) (expected Unix seconds)")
                return
            }
            try d.addEvent(user: d.user(u), item: d.item(i), type: .rating, time: t)
        }
        d.rowsRead = parsed.rows
        if let meta = try SourceResolver.optional(input: o.input, override: o.items, candidates: SourceResolver.gzOrPlain("item_meta.csv")) {
            try d.addSource(role: "items", path: meta)
            d.hasCategories = true
            d.hasRelations = true
            d.padItemTables()
            let m = DelimitedReader(path: meta, delimiter: 0x09, header: .exact(["item_id", "i_category", "r_complement", "r_substitute"]),
                                    describe: "tab-separated item_id, i_category, r_complement, r_substitute")
            try m.read(log: &log) { line, f, n, log in
                guard let i = ByteParse.uint64(line, f.starts[0], f.ends[0]) else {
                    try log.report(.nonNumericID, file: meta, line: n, "non-numeric item_id \(quoteField(line, f.starts[0], f.ends[0]))")
                    return
                }
                guard let c = ByteParse.uint64(line, f.starts[1], f.ends[1]),
                      let comp = parseIDList(line, f.starts[2], f.ends[2]), let sub = parseIDList(line, f.starts[3], f.ends[3]) else {
                    try log.report(.malformed, file: meta, line: n, "expected an integer i_category and lists like [1, 2] in r_complement / r_substitute")
                    return
                }
                guard let ii = d.items.find(i) else { return }
                if c != 0 { d.itemCategory[ii] = c }
                d.itemComplements[ii] = Array(comp.prefix(o.maxRelations))
                d.itemSubstitutes[ii] = Array(sub.prefix(o.maxRelations))
            }
        }
        return d
    }

    /// Parses `[1, 2, 3]` (or `[]`) into integers; nil if malformed.
    static func parseIDList(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> [UInt64]? {
        var s = start, e = end
        while s < e && b[s] == 0x20 { s += 1 }
        while e > s && b[e - 1] == 0x20 { e -= 1 }
        guard e - s >= 2, b[s] == UInt8(ascii: "["), b[e - 1] == UInt8(ascii: "]") else { return nil }
        var out: [UInt64] = []
        var i = s + 1
        let stop = e - 1
        while i < stop {
            while i < stop && (b[i] == 0x20 || b[i] == UInt8(ascii: ",")) { i += 1 }
            if i >= stop { break }
            let j0 = i
            while i < stop && b[i] != UInt8(ascii: ",") && b[i] != 0x20 { i += 1 }
            guard let v = ByteParse.uint64(b, j0, i) else { return nil }
            out.append(v)
        }
        return out
    }
}

/// A minimal JSON tokenizer for the item-attribute files: strings, integer arrays, punctuation.
struct JSONScanner {
    /// The whole document (a view owned by the caller's closure).
    let bytes: UnsafeBufferPointer<UInt8>
    /// File name for messages.
    let path: String
    /// Current byte offset.
    var at = 0

    /// A scanner at offset 0 of `bytes`.
    init(bytes: UnsafeBufferPointer<UInt8>, path: String) {
        self.bytes = bytes
        self.path = path
    }

    /// An error naming the file and current byte offset.
    func error(_ what: String) -> HeedError {
        HeedError(.invalidInput, "\(path): byte offset \(at): malformed JSON: \(what) [malformed]")
    }

    /// Skips JSON whitespace.
    mutating func skipSpace() {
        while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 { at += 1 }
    }

    /// The next non-space byte without consuming it.
    mutating func peek() throws -> UInt8 {
        skipSpace()
        guard at < bytes.count else { throw error("unexpected end of input") }
        return bytes[at]
    }

    /// Consumes and returns the next non-space byte.
    mutating func next() throws -> UInt8 {
        let c = try peek()
        at += 1
        return c
    }

    /// Consumes `c` or throws naming the offset.
    mutating func expect(_ c: UInt8) throws {
        guard try next() == c else { at -= 1; throw error("expected '\(Character(UnicodeScalar(c)))'") }
    }

    /// A string without escapes; returns its byte bounds.
    mutating func string() throws -> (Int, Int) {
        try expect(UInt8(ascii: "\""))
        let s = at
        while at < bytes.count && bytes[at] != UInt8(ascii: "\"") {
            if bytes[at] == UInt8(ascii: "\\") { throw error("escape sequences are not expected in ids") }
            at += 1
        }
        guard at < bytes.count else { throw error("unterminated string") }
        at += 1
        return (s, at - 1)
    }

    /// `[int, int, …]`.
    mutating func integerArray() throws -> [UInt64] {
        try expect(UInt8(ascii: "["))
        var out: [UInt64] = []
        if try peek() == UInt8(ascii: "]") { at += 1; return out }
        while true {
            skipSpace()
            let s = at
            while at < bytes.count && bytes[at] >= 48 && bytes[at] <= 57 { at += 1 }
            guard let v = ByteParse.uint64(bytes, s, at) else { throw error("expected a non-negative integer") }
            out.append(v)
            let c = try next()
            if c == UInt8(ascii: "]") { return out }
            guard c == UInt8(ascii: ",") else { at -= 1; throw error("expected ',' or ']' in an array") }
        }
    }
}
