import HeedCore
import HeedData

/// Which slots the `self-attention` model reads: the behaviour model's slots (user, target
/// item and category, behaviour items and categories) plus, per behaviour, its event type
/// (`hist_events`) and the time gap before the target (`hist_gaps`) where the dataset has them.
public struct SelfAttentionFields: Equatable, Sendable {
    /// User, target and behaviour item/category slots.
    public var behaviour: BehaviourFields
    /// Behaviour event types (pv/cart/fav/buy), aligned with `hist_items`; nil without them.
    public var histEvents: BehaviourFields.Field?
    /// Bucketed time gaps of the behaviours, aligned with `hist_items`; nil without timestamps.
    public var histGaps: BehaviourFields.Field?

    /// Fields given directly (tests and custom schemas).
    public init(behaviour: BehaviourFields, histEvents: BehaviourFields.Field?, histGaps: BehaviourFields.Field?) {
        self.behaviour = behaviour
        self.histEvents = histEvents
        self.histGaps = histGaps
    }

    /// Resolves the standard slot names of `heed prepare`; `hist_events` and `hist_gaps` are
    /// used when present and aligned with `hist_items`.
    ///
    /// - Throws: `HeedError(.config)` naming `model` and the missing or ill-shaped slot.
    public init(schema: SampleSchema, model: String, useUser: Bool) throws {
        let behaviour = try BehaviourFields(schema: schema, model: model, useUser: useUser)
        func aligned(_ name: String) throws -> BehaviourFields.Field? {
            guard let i = schema.slotIndex(name) else { return nil }
            let s = schema.slots[i]
            guard s.kind == .sequence, s.alignedWith == "hist_items" else {
                throw HeedError(.config, "model \(model) needs slot '\(name)' to be a sequence aligned with 'hist_items', but it is a \(s.kind.rawValue) aligned with \(s.alignedWith ?? "nothing")")
            }
            return BehaviourFields.Field(name: name, table: s.group)
        }
        self.init(behaviour: behaviour, histEvents: try aligned("hist_events"), histGaps: try aligned("hist_gaps"))
    }

    /// The behaviour sequence fields summed per position, `hist_items` first.
    public var sequenceFields: [BehaviourFields.Field] {
        [behaviour.histItems, behaviour.histCategories, histEvents, histGaps].compactMap { $0 }
    }

    /// Every field name read, target fields first.
    public var names: [String] { behaviour.names + [histEvents?.name, histGaps?.name].compactMap { $0 } }

    /// The distinct tables read, ascending.
    public var tables: [UInt8] {
        Array(Set(behaviour.tables + [histEvents?.table, histGaps?.table].compactMap { $0 })).sorted()
    }
}
