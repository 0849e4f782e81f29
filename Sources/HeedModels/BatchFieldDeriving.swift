/// A model that reads fields computed from the prepared slots rather than stored in them
/// (the `text-tower`'s item-text keys). `ModelCatalog.make` builds each batch from the
/// model's `inputFields` (real slots), then applies `deriveFields`.
public protocol BatchFieldDeriving {
    /// Adds the derived fields to a batch that holds the model's `inputFields`.
    var deriveFields: @Sendable (inout ModelBatch) -> Void { get }
}
