import HeedCore

/// How a next-item model is trained on its item sequences.
public enum NextItemLoss: String, Sendable, CaseIterable {
    /// Binary cross-entropy on the positive and one sampled negative per position (the
    /// SASRec paper, §III-E): `−log σ(r_pos) − log(1 − σ(r_neg))`, negatives drawn uniformly
    /// from the catalogue outside the user's items.
    case bce
    /// Softmax cross-entropy over the positive and `negatives` catalogue items drawn uniformly
    /// once per batch and shared by every position (a candidate equal to a position's
    /// positive is left out of that position's softmax).
    case sampledSoftmax = "sampled-softmax"
    /// Softmax cross-entropy over every catalogue item (full cross-entropy).
    case softmax

    /// The loss a run config names (`model.loss`).
    /// - Throws: `HeedError(.config)` for any other name.
    public init(config name: String) throws {
        guard let loss = NextItemLoss(rawValue: name) else {
            throw HeedError(.config, "model.loss must be one of \(Self.allCases.map(\.rawValue).joined(separator: ", ")), not '\(name)'")
        }
        self = loss
    }
}
