import HeedCore

/// The generic documented schema (docs/data-format.md): CSV or TSV files with a header,
/// optionally gzipped, optionally starting with `# heed-schema: 1`.
///
/// - events: `user,item[,event][,timestamp][,rating][,price][,category][,tags]` (columns in any
///   order). Without `event` every row is a rating (with a `rating` column) or a view; without
///   `timestamp` the file order within a user is the time order; `rating` is a number or empty
///   (unrated), and `--positive-rating` turns it into the label; `tags` is `|`-separated.
/// - items: `item[,category][,price][,brand][,tags][,title]`
/// - social: `user,friend` (directed: user trusts/follows friend)
///
/// Tags become attribute tokens `tag=value`; an item's first tag is its category when no
/// `category` column names one. Ids made of digits are numbers, anything else is hashed
/// (`FeatureGroup.rawID`).
enum GenericLoader {
    /// Reads the generic files named by `--events` (required), `--items`, `--social`.
    static func load(_ o: PrepareOptions, log: inout BadRowLog, spill: EventSpill? = nil) throws -> RawDataset {
        var d = RawDataset(name: o.dataset.rawValue, spill: spill)
        let path = try SourceResolver.resolve(input: o.input, override: o.events,
                                              candidates: ["events.csv.gz", "events.csv", "events.tsv.gz", "events.tsv"],
                                              role: "events", dataset: o.dataset.rawValue, inputMayBeFile: true)
        try d.addSource(role: "events", path: path)
        let delim = DelimitedReader.delimiter(forPath: path)
        let r = DelimitedReader(path: path, delimiter: delim, quoted: delim == 0x2C,
                                header: .named(required: ["user", "item"], optional: ["event", "timestamp", "rating", "price", "category", "tags"]),
                                allowSchemaLine: true, describe: "a header and rows user,item[,event][,timestamp][,rating][,price][,category][,tags]")
        var cu = 0, ci = 0, ce = -1, ct = -1, cr = -1, cp = -1, cc = -1, cg = -1
        var defaultEvent = EventType.view
        let parsed = try r.read(log: &log, onHeader: { cols in
            cu = cols["user"]!; ci = cols["item"]!
            ce = cols["event"] ?? -1; ct = cols["timestamp"] ?? -1; cr = cols["rating"] ?? -1
            cp = cols["price"] ?? -1; cc = cols["category"] ?? -1; cg = cols["tags"] ?? -1
            if ct < 0 { d.hasTimestamps = false }
            if cr >= 0 { d.hasRatings = true; defaultEvent = .rating }
            if cp >= 0 { d.hasEventPrices = true; d.hasPrices = true }
            if cc >= 0 || cg >= 0 { d.hasCategories = true }
            if cg >= 0 { d.hasAttributes = true }
        }) { line, f, n, log in
            guard f.ends[cu] > f.starts[cu] else { try log.report(.nonNumericID, file: path, line: n, "empty user id"); return }
            guard f.ends[ci] > f.starts[ci] else { try log.report(.nonNumericID, file: path, line: n, "empty item id"); return }
            var e = defaultEvent
            if ce >= 0 {
                guard let parsedEvent = EventType.parse(line, f.starts[ce], f.ends[ce]) else {
                    try log.report(.unknownEventType, file: path, line: n, "unknown event type \(quoteField(line, f.starts[ce], f.ends[ce])) (expected one of \(EventType.acceptedNames))")
                    return
                }
                e = parsedEvent
            }
            // Without timestamps the running row number keeps the file order within each user
            // (events are ordered by time, then file order).
            var t = Int64(d.eventsSeen)
            if ct >= 0 {
                guard let parsedTime = ByteParse.timestamp(line, f.starts[ct], f.ends[ct]) else {
                    try log.report(.nonNumericTimestamp, file: path, line: n, "bad timestamp \(quoteField(line, f.starts[ct], f.ends[ct])) (expected Unix seconds or YYYY-MM-DD[ HH:MM:SS])")
                    return
                }
                t = parsedTime
            }
            var rating = Float.nan
            if cr >= 0 && f.ends[cr] > f.starts[cr] {
                guard let v = ByteParse.double(line, f.starts[cr], f.ends[cr]), v.isFinite else {
                    try log.report(.badNumber, file: path, line: n, "bad rating \(quoteField(line, f.starts[cr], f.ends[cr])) (expected a number or empty)")
                    return
                }
                rating = Float(v)
            }
            var price = Float.nan
            if cp >= 0 && f.ends[cp] > f.starts[cp] {
                guard let p = ByteParse.double(line, f.starts[cp], f.ends[cp]) else {
                    try log.report(.badNumber, file: path, line: n, "bad price \(quoteField(line, f.starts[cp], f.ends[cp])) (expected a decimal number or empty)")
                    return
                }
                price = p > 0 ? Float(p) : .nan
            }
            let ii = d.item(FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[ci]..<f.ends[ci]])))
            if cc >= 0 && f.ends[cc] > f.starts[cc] && d.itemCategory[ii] == FeatureGroup.missingRawID {
                d.itemCategory[ii] = FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[cc]..<f.ends[cc]]))
            }
            if cg >= 0 {
                d.padItemTables()
                // An item's tags come from its first row that has any.
                if d.itemAttributes[ii].isEmpty { setTags(of: ii, line, f.starts[cg], f.ends[cg], categoryColumn: cc >= 0, into: &d, o: o) }
            }
            try d.addEvent(user: d.user(FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[cu]..<f.ends[cu]]))), item: ii, type: e, time: t,
                           rating: cr >= 0 ? rating : nil, price: cp >= 0 ? price : nil)
        }
        d.rowsRead = parsed.rows
        if let items = try SourceResolver.optional(input: o.input, override: o.items,
                                                    candidates: ["items.csv.gz", "items.csv", "items.tsv.gz", "items.tsv"]) {
            try d.addSource(role: "items", path: items)
            try readItems(path: items, into: &d, log: &log, o: o)
        }
        if let social = try SourceResolver.optional(input: o.input, override: o.social,
                                                     candidates: ["social.csv.gz", "social.csv", "social.tsv.gz", "social.tsv"]) {
            try d.addSource(role: "social", path: social)
            d.hasSocial = true
            let delim = DelimitedReader.delimiter(forPath: social)
            var header: [String: Int] = [:]
            let r = DelimitedReader(path: social, delimiter: delim, quoted: delim == 0x2C,
                                    header: .named(required: ["user", "friend"], optional: []),
                                    allowSchemaLine: true, describe: "a header and rows user,friend")
            try r.read(log: &log, onHeader: { header = $0 }) { line, f, n, log in
                let a = header["user"]!, b = header["friend"]!
                guard f.ends[a] > f.starts[a], f.ends[b] > f.starts[b] else {
                    try log.report(.nonNumericID, file: social, line: n, "empty user or friend id")
                    return
                }
                let ua = FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[a]..<f.ends[a]]))
                let ub = FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[b]..<f.ends[b]]))
                if ua != ub { d.addNeighbor(user: d.user(ua), ub) }
            }
        }
        return d
    }

    /// Reads the generic item file: category, price, brand (an attribute) and title words.
    static func readItems(path: String, into d: inout RawDataset, log: inout BadRowLog, o: PrepareOptions) throws {
        d.padItemTables()
        let delim = DelimitedReader.delimiter(forPath: path)
        var cols: [String: Int] = [:]
        let r = DelimitedReader(path: path, delimiter: delim, quoted: delim == 0x2C,
                                header: .named(required: ["item"], optional: ["category", "price", "brand", "tags", "title"]),
                                allowSchemaLine: true, describe: "a header and rows item[,category][,price][,brand][,tags][,title]")
        try r.read(log: &log, onHeader: { c in
            cols = c
            if c["category"] != nil { d.hasCategories = true }
            if c["price"] != nil { d.hasPrices = true }
            if c["brand"] != nil || c["tags"] != nil { d.hasAttributes = true }
            if c["tags"] != nil { d.hasCategories = true }
            if c["title"] != nil { d.hasText = true }
        }) { line, f, n, log in
            let ci = cols["item"]!
            guard f.ends[ci] > f.starts[ci] else { try log.report(.nonNumericID, file: path, line: n, "empty item id"); return }
            var price = Float.nan
            if let cp = cols["price"], f.ends[cp] > f.starts[cp] {
                guard let p = ByteParse.double(line, f.starts[cp], f.ends[cp]) else {
                    try log.report(.badNumber, file: path, line: n, "bad price \(quoteField(line, f.starts[cp], f.ends[cp])) (expected a decimal number or empty)")
                    return
                }
                price = p > 0 ? Float(p) : .nan
            }
            guard let ii = d.items.find(FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[ci]..<f.ends[ci]]))) else { return }
            if let cc = cols["category"], f.ends[cc] > f.starts[cc] {
                d.itemCategory[ii] = FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[cc]..<f.ends[cc]]))
            }
            if !price.isNaN { d.itemPrice[ii] = price }
            if cols["brand"] != nil || cols["tags"] != nil { d.itemAttributes[ii] = [] }
            if let cb = cols["brand"], let k = attributeKey(field: "brand", line, f.starts[cb], f.ends[cb]) { d.itemAttributes[ii] = [k] }
            if let cg = cols["tags"] {
                let hasCategory = cols["category"].map { f.ends[$0] > f.starts[$0] } ?? false
                setTags(of: ii, line, f.starts[cg], f.ends[cg], categoryColumn: hasCategory, into: &d, o: o)
            }
            if let cti = cols["title"] { d.itemText[ii] = textTokenKeys(line, f.starts[cti], f.ends[cti], limit: o.maxTextTokens) }
        }
    }

    /// Adds the `|`-separated tags of `line[start..<end]` to item `ii`'s attribute tokens
    /// (`tag=value`, blanks trimmed, empty tags and repeats dropped, at most `o.maxAttributes`
    /// tokens in all); the first tag becomes the item's category unless `categoryColumn` says
    /// a category column names one.
    static func setTags(of ii: Int, _ line: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, categoryColumn: Bool,
                        into d: inout RawDataset, o: PrepareOptions) {
        var from = start
        var first = true
        while from <= end {
            var to = from
            while to < end && line[to] != UInt8(ascii: "|") { to += 1 }
            var a = from, b = to
            while a < b && (line[a] == 0x20 || line[a] == 0x09) { a += 1 }
            while b > a && (line[b - 1] == 0x20 || line[b - 1] == 0x09) { b -= 1 }
            if b > a {
                if first && !categoryColumn && d.itemCategory[ii] == FeatureGroup.missingRawID {
                    d.itemCategory[ii] = FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[a..<b]))
                }
                first = false
                if let k = attributeKey(field: "tag", line, a, b), !d.itemAttributes[ii].contains(k), d.itemAttributes[ii].count < o.maxAttributes {
                    d.itemAttributes[ii].append(k)
                }
            }
            from = to + 1
        }
    }
}
