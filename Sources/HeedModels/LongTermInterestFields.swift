import HeedCore
import HeedData

/// Which slots the `long-term-interest` model reads, and the embedding table of each.
///
/// Three kinds of data, as source document 1 fuses them: the user and the target item; item
/// **tags** (the target's category and attribute tokens, the behaviours' categories); the
/// user's **social neighbours** (trust links, keyed in the user table); and the long-term
/// behaviour sequence. The tag and neighbour fields are nil when the data lacks them or the
/// model is built without them (the twins the comparison measures).
public struct LongTermInterestFields: Equatable, Sendable {
    /// The user id (single).
    public var user: BehaviourFields.Field
    /// The target item (single).
    public var item: BehaviourFields.Field
    /// The target's category (single): a tag.
    public var category: BehaviourFields.Field?
    /// The target's attribute tokens (sequence, e.g. the generic schema's `tags`): tags.
    public var attributes: BehaviourFields.Field?
    /// The behaviour items (sequence, most recent last).
    public var histItems: BehaviourFields.Field
    /// The behaviours' categories, aligned with `histItems`: tags.
    public var histCategories: BehaviourFields.Field?
    /// The users this user trusts or follows (sequence, user table).
    public var neighbors: BehaviourFields.Field?

    /// Fields given directly (tests and custom schemas).
    public init(user: BehaviourFields.Field, item: BehaviourFields.Field, category: BehaviourFields.Field?,
                attributes: BehaviourFields.Field?, histItems: BehaviourFields.Field, histCategories: BehaviourFields.Field?,
                neighbors: BehaviourFields.Field?) {
        self.user = user
        self.item = item
        self.category = category
        self.attributes = attributes
        self.histItems = histItems
        self.histCategories = histCategories
        self.neighbors = neighbors
    }

    /// Resolves the standard slot names of `heed prepare` (docs/data-format.md): `user`, `item`
    /// and `hist_items` are required; with `useTags`, `category` + `hist_categories` and
    /// `attributes` are read when present; with `useNeighbors`, `neighbors` when present.
    ///
    /// - Throws: `HeedError(.config)` naming `model` and the missing or ill-shaped slot.
    public init(schema: SampleSchema, model: String, useTags: Bool, useNeighbors: Bool) throws {
        let behaviour = try BehaviourFields(schema: schema, model: model, useUser: true)
        guard let user = behaviour.user else {
            throw HeedError(.config, "model \(model) needs slot 'user' (single), but the dataset has only: \(schema.slots.map(\.name).joined(separator: ", "))")
        }
        func sequence(_ name: String) throws -> BehaviourFields.Field? {
            guard let i = schema.slotIndex(name) else { return nil }
            let s = schema.slots[i]
            guard s.kind == .sequence else {
                throw HeedError(.config, "model \(model) needs slot '\(name)' to be a sequence, but the dataset's is a \(s.kind.rawValue)")
            }
            return BehaviourFields.Field(name: name, table: s.group)
        }
        let neighbors = useNeighbors ? try sequence("neighbors") : nil
        if let n = neighbors, n.table != user.table {
            throw HeedError(.config, "model \(model) reads neighbours as users, but slot 'neighbors' is in table \(n.table), not the user table \(user.table)")
        }
        self.init(user: user, item: behaviour.item,
                  category: useTags ? behaviour.category : nil, attributes: useTags ? try sequence("attributes") : nil,
                  histItems: behaviour.histItems, histCategories: useTags ? behaviour.histCategories : nil,
                  neighbors: neighbors)
    }

    /// Every field name read, target fields first.
    public var names: [String] {
        [user.name, item.name, category?.name, attributes?.name, neighbors?.name, histItems.name, histCategories?.name].compactMap { $0 }
    }

    /// The distinct tables read, ascending.
    public var tables: [UInt8] {
        Array(Set([user.table, item.table, category?.table, attributes?.table, neighbors?.table, histItems.table, histCategories?.table]
            .compactMap { $0 })).sorted()
    }
}
