extension Duration {
    /// The duration in seconds as a Double (for deadlines built with Foundation's `Date`).
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
