import Foundation

/// Classification metrics of probabilities cut at a threshold (source document 2 reports
/// accuracy, precision, recall and F1 beside AUC): a sample is predicted positive when its
/// probability is at least `threshold`, and a label above 0.5 is a positive.
public struct ThresholdMetrics: Codable, Equatable, Sendable {
    /// The cut, 0.5 unless told.
    public var threshold: Double
    /// (TP + TN) / N.
    public var accuracy: Double
    /// TP / (TP + FP); nil when nothing is predicted positive.
    public var precision: Double?
    /// TP / (TP + FN); nil when there is no positive.
    public var recall: Double?
    /// 2PR / (P + R) (0 when P + R = 0); nil when precision or recall is.
    public var f1: Double?

    /// Metrics of `probabilities` against `labels`; nil for no samples.
    /// - Parameters:
    ///   - probabilities: (N) predicted probabilities.
    ///   - labels: (N) 0/1 labels.
    public init?<S: BinaryFloatingPoint, L: BinaryFloatingPoint>(probabilities: [S], labels: [L], threshold: Double = 0.5) {
        precondition(probabilities.count == labels.count, "threshold metrics: \(probabilities.count) probabilities vs \(labels.count) labels")
        guard !probabilities.isEmpty else { return nil }
        var tp = 0, fp = 0, tn = 0, fn = 0
        for i in probabilities.indices {
            let predicted = Double(probabilities[i]) >= threshold, actual = labels[i] > 0.5
            switch (predicted, actual) {
            case (true, true): tp += 1
            case (true, false): fp += 1
            case (false, false): tn += 1
            case (false, true): fn += 1
            }
        }
        self.threshold = threshold
        accuracy = Double(tp + tn) / Double(probabilities.count)
        precision = tp + fp > 0 ? Double(tp) / Double(tp + fp) : nil
        recall = tp + fn > 0 ? Double(tp) / Double(tp + fn) : nil
        if let p = precision, let r = recall { f1 = p + r > 0 ? 2 * p * r / (p + r) : 0 } else { f1 = nil }
    }

    /// `acc 0.7012  P 0.6810  R 0.7563  F1 0.7167` (n/a where undefined).
    public var summary: String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "n/a" }
        return "acc \(f(accuracy))  P \(f(precision))  R \(f(recall))  F1 \(f(f1))"
    }
}
