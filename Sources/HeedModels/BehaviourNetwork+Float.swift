import HeedLayers

/// The cluster-facing Float form of a behaviour network: `BatchRows` in, `StepOutput` out.
extension BehaviourNetwork where T == Float {
    /// The read tables' rows of `rows`, wrapped without copying the values.
    func tableRows(_ rows: BatchRows) -> [UInt8: TableRows<Float>] {
        var out: [UInt8: TableRows<Float>] = [:]
        for t in fields.tables {
            guard let table = rows.tables[t] else { continue }
            precondition(table.dim == dim, "table \(t) was pulled with dim \(table.dim), the model uses \(dim)")
            out[t] = TableRows(keys: table.keys, values: Tensor(shape: [table.keys.count, dim], data: table.values))
        }
        return out
    }

    /// One training step: loss, probabilities, the flat dense gradient and the row gradients
    /// of every read table present in `rows`.
    mutating func step(_ batch: ModelBatch, rows: BatchRows) -> StepOutput {
        let wrapped = tableRows(rows)
        let (loss, grads) = trainStep(batch, rows: wrapped)
        var rowGradients: [UInt8: [Float]] = [:]
        for (t, g) in grads where wrapped[t] != nil { rowGradients[t] = g.data }
        return StepOutput(loss: loss, predictions: probabilities(), denseGradient: flatGradients(), rowGradients: rowGradients)
    }

    /// Inference-mode forward (Dice running statistics); returns (B) probabilities.
    mutating func predict(_ batch: ModelBatch, rows: BatchRows) -> [Float] {
        forward(batch, rows: tableRows(rows), training: false)
        return probabilities()
    }

    /// (B) sigmoid of the last logits.
    func probabilities() -> [Float] {
        logits.data.map { sigmoid($0) }
    }
}
