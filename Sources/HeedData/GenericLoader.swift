import HeedCore

/// The generic documented schema (docs/data-format.md): CSV or TSV files with a header,
/// optionally gzipped, optionally starting with `# heed-schema: 1`.
///
/// - events: `user,item,event,timestamp[,price][,category]` (columns in any order)
/// - items: `item[,category][,price][,brand][,title]`
/// - social: `user,friend` (directed: user trusts/follows friend)
///
/// Ids made of digits are numbers, anything else is hashed (`FeatureGroup.rawID`).
enum GenericLoader {
    /// Reads the generic files named by `--events` (required), `--items`, `--social`.
    static func load(_ o: PrepareOptions, log: inout BadRowLog) throws -> RawDataset {
        var d = RawDataset(name: o.dataset.rawValue)
        let path = try SourceResolver.resolve(input: o.input, override: o.events,
                                              candidates: ["events.csv.gz", "events.csv", "events.tsv.gz", "events.tsv"],
                                              role: "events", dataset: o.dataset.rawValue, inputMayBeFile: true)
        try d.addSource(role: "events", path: path)
        let delim = DelimitedReader.delimiter(forPath: path)
        let r = DelimitedReader(path: path, delimiter: delim, quoted: delim == 0x2C,
                                header: .named(required: ["user", "item", "event", "timestamp"], optional: ["price", "category"]),
                                allowSchemaLine: true, describe: "a header and rows user,item,event,timestamp[,price][,category]")
        var cu = 0, ci = 0, ce = 0, ct = 0, cp = -1, cc = -1
        let parsed = try r.read(log: &log, onHeader: { cols in
            cu = cols["user"]!; ci = cols["item"]!; ce = cols["event"]!; ct = cols["timestamp"]!
            cp = cols["price"] ?? -1; cc = cols["category"] ?? -1
            if cp >= 0 { d.hasEventPrices = true; d.hasPrices = true }
            if cc >= 0 { d.hasCategories = true }
        }) { line, f, n, log in
            guard f.ends[cu] > f.starts[cu] else { try log.report(.nonNumericID, file: path, line: n, "empty user id"); return }
            guard f.ends[ci] > f.starts[ci] else { try log.report(.nonNumericID, file: path, line: n, "empty item id"); return }
            guard let e = EventType.parse(line, f.starts[ce], f.ends[ce]) else {
                try log.report(.unknownEventType, file: path, line: n, "unknown event type \(quoteField(line, f.starts[ce], f.ends[ce])) (expected one of \(EventType.acceptedNames))")
                return
            }
            guard let t = ByteParse.timestamp(line, f.starts[ct], f.ends[ct]) else {
                try log.report(.nonNumericTimestamp, file: path, line: n, "bad timestamp \(quoteField(line, f.starts[ct], f.ends[ct])) (expected Unix seconds or YYYY-MM-DD[ HH:MM:SS])")
                return
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
            d.addEvent(user: d.user(FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[cu]..<f.ends[cu]]))), item: ii, type: e, time: t)
            if cp >= 0 { d.eventPrice.append(price) }
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
                if ua != ub { d.userNeighbors[d.user(ua)].append(ub) }
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
                                header: .named(required: ["item"], optional: ["category", "price", "brand", "title"]),
                                allowSchemaLine: true, describe: "a header and rows item[,category][,price][,brand][,title]")
        try r.read(log: &log, onHeader: { c in
            cols = c
            if c["category"] != nil { d.hasCategories = true }
            if c["price"] != nil { d.hasPrices = true }
            if c["brand"] != nil { d.hasAttributes = true }
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
            if let cb = cols["brand"], let k = attributeKey(field: "brand", line, f.starts[cb], f.ends[cb]) { d.itemAttributes[ii] = [k] }
            if let cti = cols["title"] { d.itemText[ii] = textTokenKeys(line, f.starts[cti], f.ends[cti], limit: o.maxTextTokens) }
        }
    }
}
