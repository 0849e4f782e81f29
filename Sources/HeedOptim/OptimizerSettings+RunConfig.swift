import HeedCore

extension OptimizerSettings {
    /// The optimizer a run config names (`[optimizer.sparse]` / `[optimizer.dense]` in TOML).
    ///
    /// `adam` ignores `weightDecay` (the run config documents it as AdamW only); `adamw`
    /// uses it as decoupled decay; `sgd` has no momentum; `adagrad` takes `epsilon` and
    /// starts its accumulators at 0.
    public init(_ run: OptimizerConfig) {
        let lr = Float(run.learningRate), eps = Float(run.epsilon)
        switch run.kind {
        case .adam:
            self = .adam(AdamConfig(lr: lr, beta1: Float(run.beta1), beta2: Float(run.beta2), eps: eps, weightDecay: 0))
        case .adamw:
            self = .adam(AdamConfig(lr: lr, beta1: Float(run.beta1), beta2: Float(run.beta2), eps: eps, weightDecay: Float(run.weightDecay)))
        case .sgd:
            self = .sgd(SGDConfig(lr: lr))
        case .adagrad:
            self = .adagrad(AdagradConfig(lr: lr, eps: eps))
        }
    }
}
