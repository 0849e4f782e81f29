import HeedCore
import HeedData

/// Which slots and dense columns the `attention-price` model reads: the behaviour model's
/// slots (target and behaviour items, categories where the data has them, the user if
/// embedded) plus the purchasing-power features `heed prepare` emits for data with prices
/// (docs/data-format.md §2–3): the item's `price_level`, the user's `spend_level`, the
/// household's `income_band` (The Complete Journey), and the dense `log_price`, `price_pct`,
/// `user_price_pct`, `price_gap`.
public struct AttentionPriceFields: Equatable, Sendable {
    /// The dense columns read, in this order, when the data has them.
    public static let denseNames = ["log_price", "price_pct", "user_price_pct", "price_gap"]

    /// User, target and behaviour item/category slots.
    public var behaviour: BehaviourFields
    /// Price level of the target item within its category (single); nil for the twin without
    /// price features.
    public var priceLevel: BehaviourFields.Field?
    /// The user's spend level before the target (single); nil for the twin.
    public var spendLevel: BehaviourFields.Field?
    /// The household's income band (single); nil when the data has none, or for the twin.
    public var incomeBand: BehaviourFields.Field?
    /// Indices into the record's dense columns of the price features read, in `denseNames`
    /// order (those the data has); empty for the twin.
    public var denseColumns: [Int]

    /// Fields given directly (tests and custom schemas).
    public init(behaviour: BehaviourFields, priceLevel: BehaviourFields.Field?, spendLevel: BehaviourFields.Field?,
                incomeBand: BehaviourFields.Field?, denseColumns: [Int]) {
        precondition((priceLevel == nil) == (spendLevel == nil), "attention-price fields: price and spend levels go together")
        precondition(priceLevel != nil || (incomeBand == nil && denseColumns.isEmpty), "attention-price fields: price features need the price level")
        self.behaviour = behaviour
        self.priceLevel = priceLevel
        self.spendLevel = spendLevel
        self.incomeBand = incomeBand
        self.denseColumns = denseColumns
    }

    /// Resolves the standard slot names of `heed prepare`. With `priceFeatures`, `price_level`
    /// and `spend_level` are required and `income_band` and the dense price columns are read
    /// when present; without, none of them is read (the twin of the comparison).
    ///
    /// - Throws: `HeedError(.config)` naming `model` and the missing or ill-shaped slot.
    public init(schema: SampleSchema, model: String, useUser: Bool, priceFeatures: Bool) throws {
        let behaviour = try BehaviourFields(schema: schema, model: model, useUser: useUser)
        guard priceFeatures else {
            self.init(behaviour: behaviour, priceLevel: nil, spendLevel: nil, incomeBand: nil, denseColumns: [])
            return
        }
        let available = schema.slots.map(\.name).joined(separator: ", ")
        func single(_ name: String, required: Bool) throws -> BehaviourFields.Field? {
            guard let i = schema.slotIndex(name) else {
                if required {
                    throw HeedError(.config, "model \(model) needs slot '\(name)' (single) from data with prices (heed prepare of uci-retail, completejourney, or generic with a price column), but the dataset has only: \(available); set model.price_features = false for the twin without price features")
                }
                return nil
            }
            let s = schema.slots[i]
            guard s.kind == .single else {
                throw HeedError(.config, "model \(model) needs slot '\(name)' to be a single, but the dataset's is a \(s.kind.rawValue)")
            }
            return BehaviourFields.Field(name: name, table: s.group)
        }
        let price = try single("price_level", required: true)
        let spend = try single("spend_level", required: true)
        let income = try single("income_band", required: false)
        let dense = Self.denseNames.compactMap { schema.dense.firstIndex(of: $0) }
        self.init(behaviour: behaviour, priceLevel: price, spendLevel: spend, incomeBand: income, denseColumns: dense)
    }

    /// True when the model reads purchasing-power features.
    public var hasPrice: Bool { priceLevel != nil }

    /// The purchasing-power embedding fields, in the order they fill the price vector.
    public var priceEmbeddings: [BehaviourFields.Field] { [priceLevel, spendLevel, incomeBand].compactMap { $0 } }

    /// Every field name read, behaviour fields first.
    public var names: [String] { behaviour.names + priceEmbeddings.map(\.name) }

    /// The distinct tables read, ascending.
    public var tables: [UInt8] { Array(Set(behaviour.tables + priceEmbeddings.map(\.table))).sorted() }
}
