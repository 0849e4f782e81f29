/// What every record of a prepared dataset holds: feature slots, labels and dense features.
///
/// Stored (as JSON) in every shard header and in the manifest. Slot, label and dense
/// names are stable; which optional slots exist depends on the dataset
/// (docs/data-format.md lists them per dataset).
public struct SampleSchema: Codable, Equatable, Sendable {
    /// Feature slots in storage order.
    public var slots: [FeatureSlot]
    /// Label names; record `r` has `labels.count` Float32 labels.
    public var labels: [String]
    /// Dense feature names; record `r` has `dense.count` Float32 values.
    public var dense: [String]

    /// A schema from its parts.
    public init(slots: [FeatureSlot], labels: [String], dense: [String]) {
        self.slots = slots
        self.labels = labels
        self.dense = dense
    }

    /// Index of the slot called `name`, if present.
    public func slotIndex(_ name: String) -> Int? { slots.firstIndex { $0.name == name } }
    /// Index of the label called `name`, if present.
    public func labelIndex(_ name: String) -> Int? { labels.firstIndex(of: name) }
    /// Index of the dense feature called `name`, if present.
    public func denseIndex(_ name: String) -> Int? { dense.firstIndex(of: name) }
}

/// One feature slot: a named list of feature keys per record, all in one key group.
public struct FeatureSlot: Codable, Equatable, Sendable {
    /// Whether a slot holds exactly one key or a variable-length list.
    public enum Kind: String, Codable, Sendable {
        /// Exactly one key per record (a missing value has the group's `missingKey`).
        case single
        /// 0...maxLength keys per record, in order (histories: oldest first, most recent last).
        case sequence
    }

    /// Stable slot name, e.g. `item`, `hist_items`.
    public var name: String
    /// The key group (`FeatureGroup.rawValue`) of every key in the slot.
    public var group: UInt8
    /// Single or sequence.
    public var kind: Kind
    /// Largest number of keys a record has in this slot (1 for single slots).
    public var maxLength: Int
    /// For aligned sequences, the slot whose positions this one follows one-to-one
    /// (e.g. `hist_categories` is aligned with `hist_items`).
    public var alignedWith: String?

    /// A slot description.
    public init(name: String, group: FeatureGroup, kind: Kind, maxLength: Int, alignedWith: String? = nil) {
        self.name = name
        self.group = group.rawValue
        self.kind = kind
        self.maxLength = kind == .single ? 1 : maxLength
        self.alignedWith = alignedWith
    }

    /// The key group as an enum value (nil for a group this build does not know).
    public var featureGroup: FeatureGroup? { FeatureGroup(rawValue: group) }
}
