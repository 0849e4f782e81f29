import HeedCore
import HeedData

/// Which slots of a dataset a behaviour model (base, din) reads, and the embedding table
/// (feature group) of each.
///
/// The target item and the behaviour items share one table, as do the target category and
/// the behaviour categories, because the data module gives them the same feature group: an
/// item has one embedding whether it is the candidate or part of the history.
public struct BehaviourFields: Equatable, Sendable {
    /// A slot name and the table its keys index.
    public struct Field: Equatable, Sendable {
        /// Slot (and `ModelBatch` field) name.
        public var name: String
        /// Feature group = table id of every key in the slot.
        public var table: UInt8

        /// A field reading slot `name` from table `table`.
        public init(name: String, table: UInt8) {
            self.name = name
            self.table = table
        }
    }

    /// The user id (single), if the model embeds it.
    public var user: Field?
    /// The target item (single).
    public var item: Field
    /// The target item's category (single), if the dataset has categories.
    public var category: Field?
    /// The behaviour items (sequence, most recent last).
    public var histItems: Field
    /// The behaviour items' categories, aligned with `histItems`.
    public var histCategories: Field?

    /// Fields given directly (tests and custom schemas).
    public init(user: Field?, item: Field, category: Field?, histItems: Field, histCategories: Field?) {
        precondition((category == nil) == (histCategories == nil), "behaviour fields: category and hist_categories go together")
        self.user = user
        self.item = item
        self.category = category
        self.histItems = histItems
        self.histCategories = histCategories
    }

    /// Resolves the standard slot names of `heed prepare` (docs/data-format.md): `item` and
    /// `hist_items` are required; `category` with `hist_categories` are used when both exist;
    /// `user` when `useUser` and present.
    ///
    /// - Throws: `HeedError(.config)` naming `model` and the missing or ill-shaped slot.
    public init(schema: SampleSchema, model: String, useUser: Bool) throws {
        let available = schema.slots.map(\.name).joined(separator: ", ")
        func slot(_ name: String, _ kind: FeatureSlot.Kind, required: Bool) throws -> Field? {
            guard let i = schema.slotIndex(name) else {
                if required {
                    throw HeedError(.config, "model \(model) needs slot '\(name)' (\(kind.rawValue)), but the dataset has only: \(available)")
                }
                return nil
            }
            let s = schema.slots[i]
            guard s.kind == kind else {
                throw HeedError(.config, "model \(model) needs slot '\(name)' to be a \(kind.rawValue), but the dataset's is a \(s.kind.rawValue)")
            }
            return Field(name: name, table: s.group)
        }
        let item = try slot("item", .single, required: true)!
        let histItems = try slot("hist_items", .sequence, required: true)!
        let category = try slot("category", .single, required: false)
        let histCategories = try slot("hist_categories", .sequence, required: false)
        if (category == nil) != (histCategories == nil) {
            let missing = category == nil ? "category" : "hist_categories"
            throw HeedError(.config, "model \(model) uses categories of the target and of the behaviours together, but the dataset lacks slot '\(missing)' (it has: \(available))")
        }
        if histCategories != nil, let i = schema.slotIndex("hist_categories"), schema.slots[i].alignedWith != "hist_items" {
            throw HeedError(.config, "model \(model) needs slot 'hist_categories' aligned with 'hist_items', but it is aligned with \(schema.slots[i].alignedWith ?? "nothing")")
        }
        let user = useUser ? try slot("user", .single, required: false) : nil
        self.init(user: user, item: item, category: category, histItems: histItems, histCategories: histCategories)
    }

    /// Every field name read, target fields first.
    public var names: [String] {
        [user?.name, item.name, category?.name, histItems.name, histCategories?.name].compactMap { $0 }
    }

    /// The distinct tables read, ascending.
    public var tables: [UInt8] {
        Array(Set([user?.table, item.table, category?.table, histItems.table, histCategories?.table].compactMap { $0 })).sorted()
    }
}
