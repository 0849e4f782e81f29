import HeedCore

/// Loaders for the price-bearing retail datasets: UCI Online Retail and dunnhumby's Complete Journey.
enum RetailLoaders {
    /// UCI Online Retail `online_retail.csv` (quoted CSV with header
    /// `InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country`).
    ///
    /// Kept: purchase lines with a customer, not a `C` (cancellation) invoice, Quantity > 0,
    /// UnitPrice > 0 and a product stock code (5 digits plus optional letters). Filters are
    /// applied in that order and counted under `missing_customer`, `cancellation`,
    /// `non_positive_quantity`, `non_positive_price`, `non_product_code`.
    static func loadOnlineRetail(_ o: PrepareOptions, log: inout BadRowLog, spill: EventSpill? = nil) throws -> RawDataset {
        var d = RawDataset(name: o.dataset.rawValue, spill: spill)
        d.hasEventPrices = true
        d.hasPrices = true
        d.hasText = true
        let path = try SourceResolver.resolve(input: o.input, override: o.events, candidates: SourceResolver.gzOrPlain("online_retail.csv"),
                                              role: "events", dataset: o.dataset.rawValue, inputMayBeFile: true)
        try d.addSource(role: "events", path: path)
        let r = DelimitedReader(path: path, delimiter: UInt8(ascii: ","), quoted: true,
                                header: .exact(["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]),
                                describe: "CSV InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country")
        let parsed = try r.read(log: &log) { line, f, n, log in
            guard let qty = ByteParse.int64(line, f.starts[3], f.ends[3]) else {
                try log.report(.badNumber, file: path, line: n, "bad Quantity \(quoteField(line, f.starts[3], f.ends[3])) (expected an integer)")
                return
            }
            guard let price = ByteParse.double(line, f.starts[5], f.ends[5]) else {
                try log.report(.badNumber, file: path, line: n, "bad UnitPrice \(quoteField(line, f.starts[5], f.ends[5])) (expected a decimal number)")
                return
            }
            guard let t = ByteParse.dateTime(line, f.starts[4], f.ends[4]) else {
                try log.report(.nonNumericTimestamp, file: path, line: n, "bad InvoiceDate \(quoteField(line, f.starts[4], f.ends[4])) (expected YYYY-MM-DD HH:MM:SS)")
                return
            }
            if f.ends[6] == f.starts[6] { d.drop("missing_customer"); return }
            guard let customer = ByteParse.uint64(line, f.starts[6], f.ends[6]) else {
                try log.report(.nonNumericID, file: path, line: n, "non-numeric CustomerID \(quoteField(line, f.starts[6], f.ends[6])) (expected an integer)")
                return
            }
            if f.ends[0] > f.starts[0] && line[f.starts[0]] == UInt8(ascii: "C") { d.drop("cancellation"); return }
            if qty <= 0 { d.drop("non_positive_quantity"); return }
            if !(price > 0) { d.drop("non_positive_price"); return }
            guard isProductCode(line, f.starts[1], f.ends[1]) else { d.drop("non_product_code"); return }
            let ii = d.item(FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[1]..<f.ends[1]])))
            if ii >= d.itemText.count { d.padItemTables() }
            if d.itemText[ii].isEmpty {
                d.itemText[ii] = textTokenKeys(line, f.starts[2], f.ends[2], limit: o.maxTextTokens)
            }
            try d.addEvent(user: d.user(customer), item: ii, type: .purchase, time: t, price: Float(price))
        }
        d.rowsRead = parsed.rows
        return d
    }

    /// A UCI product stock code: exactly five digits, then only letters.
    static func isProductCode(_ b: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> Bool {
        guard e - s >= 5 else { return false }
        for i in s..<(s + 5) where b[i] &- 48 >= 10 { return false }
        for i in (s + 5)..<e {
            let c = b[i] | 0x20
            if c < 97 || c > 122 { return false }
        }
        return true
    }

    /// Complete Journey: `transactions.csv`, `products.csv`, `demographics.csv` (CSV with headers).
    ///
    /// Lines with quantity 0 are dropped (`zero_quantity`). The line's unit price is the
    /// regular shelf price (sales_value + retail_disc + coupon_match_disc) / quantity, left
    /// unknown for quantity > 100 (fuel lines count gallons, not units).
    static func loadCompleteJourney(_ o: PrepareOptions, log: inout BadRowLog, spill: EventSpill? = nil) throws -> RawDataset {
        var d = RawDataset(name: o.dataset.rawValue, spill: spill)
        d.hasEventPrices = true
        d.hasPrices = true
        let path = try SourceResolver.resolve(input: o.input, override: o.events, candidates: SourceResolver.gzOrPlain("transactions.csv"),
                                              role: "events", dataset: o.dataset.rawValue, inputMayBeFile: true)
        try d.addSource(role: "events", path: path)
        let r = DelimitedReader(path: path, delimiter: UInt8(ascii: ","), quoted: true,
                                header: .exact(["household_id", "store_id", "basket_id", "product_id", "quantity", "sales_value", "retail_disc",
                                                "coupon_disc", "coupon_match_disc", "week", "transaction_timestamp"]),
                                describe: "CSV household_id,store_id,basket_id,product_id,quantity,sales_value,retail_disc,coupon_disc,coupon_match_disc,week,transaction_timestamp")
        let parsed = try r.read(log: &log) { line, f, n, log in
            guard let h = ByteParse.uint64(line, f.starts[0], f.ends[0]), let p = ByteParse.uint64(line, f.starts[3], f.ends[3]) else {
                try log.report(.nonNumericID, file: path, line: n, "non-numeric household_id or product_id in \(quoteField(line, 0, line.count))")
                return
            }
            guard let q = ByteParse.int64(line, f.starts[4], f.ends[4]), let sales = ByteParse.double(line, f.starts[5], f.ends[5]),
                  let retail = ByteParse.double(line, f.starts[6], f.ends[6]), let match = ByteParse.double(line, f.starts[8], f.ends[8]) else {
                try log.report(.badNumber, file: path, line: n, "bad quantity, sales_value, retail_disc or coupon_match_disc in \(quoteField(line, 0, line.count))")
                return
            }
            guard let t = ByteParse.dateTime(line, f.starts[10], f.ends[10]) else {
                try log.report(.nonNumericTimestamp, file: path, line: n, "bad transaction_timestamp \(quoteField(line, f.starts[10], f.ends[10])) (expected YYYY-MM-DD HH:MM:SS)")
                return
            }
            if q == 0 { d.drop("zero_quantity"); return }
            let ii = d.item(p)
            try d.addEvent(user: d.user(h), item: ii, type: .purchase, time: t, price: q > 0 && q <= 100 ? Float((sales + retail + match) / Double(q)) : .nan)
        }
        d.rowsRead = parsed.rows
        if let products = try SourceResolver.optional(input: o.input, override: o.items, candidates: SourceResolver.gzOrPlain("products.csv")) {
            try d.addSource(role: "items", path: products)
            d.hasCategories = true
            d.hasAttributes = true
            d.hasText = true
            d.padItemTables()
            let fields = ["manufacturer", "department", "brand", "product_category", "product_type", "package_size"]
            let pr = DelimitedReader(path: products, delimiter: UInt8(ascii: ","), quoted: true,
                                     header: .exact(["product_id", "manufacturer_id", "department", "brand", "product_category", "product_type", "package_size"]),
                                     describe: "CSV product_id,manufacturer_id,department,brand,product_category,product_type,package_size")
            try pr.read(log: &log) { line, f, n, log in
                guard let p = ByteParse.uint64(line, f.starts[0], f.ends[0]) else {
                    try log.report(.nonNumericID, file: products, line: n, "non-numeric product_id \(quoteField(line, f.starts[0], f.ends[0]))")
                    return
                }
                guard let ii = d.items.find(p) else { return }
                if f.ends[4] > f.starts[4] {
                    d.itemCategory[ii] = FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[4]..<f.ends[4]]))
                }
                var attrs: [UInt64] = []
                for (k, name) in fields.enumerated() {
                    if let a = attributeKey(field: name, line, f.starts[k + 1], f.ends[k + 1]) { attrs.append(a) }
                }
                d.itemAttributes[ii] = Array(attrs.prefix(o.maxAttributes))
                d.itemText[ii] = textTokenKeys(line, f.starts[4], f.ends[5], limit: o.maxTextTokens)
            }
        }
        if let demo = try SourceResolver.optional(input: o.input, override: o.users, candidates: SourceResolver.gzOrPlain("demographics.csv")) {
            try d.addSource(role: "users", path: demo)
            d.hasDemographics = true
            d.padUserTables()
            let dr = DelimitedReader(path: demo, delimiter: UInt8(ascii: ","), quoted: true,
                                     header: .exact(["household_id", "age", "income", "home_ownership", "marital_status", "household_size", "household_comp", "kids_count"]),
                                     describe: "CSV household_id,age,income,home_ownership,marital_status,household_size,household_comp,kids_count")
            try dr.read(log: &log) { line, f, n, log in
                guard let h = ByteParse.uint64(line, f.starts[0], f.ends[0]) else {
                    try log.report(.nonNumericID, file: demo, line: n, "non-numeric household_id \(quoteField(line, f.starts[0], f.ends[0]))")
                    return
                }
                guard let u = d.users.find(h) else { return }
                if f.ends[1] > f.starts[1] { d.userAge[u] = FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[1]..<f.ends[1]])) }
                if f.ends[2] > f.starts[2] { d.userIncome[u] = FeatureGroup.rawID(bytes: UnsafeBufferPointer(rebasing: line[f.starts[2]..<f.ends[2]])) }
            }
        }
        return d
    }
}
