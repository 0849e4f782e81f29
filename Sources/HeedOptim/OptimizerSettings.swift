import HeedCore

/// Which optimizer to apply and its settings; plain data in table and run configs.
///
/// Encoded flat with a `kind` tag, e.g. `{"kind": "adam", "lr": 0.001}`; fields left
/// out take each optimizer's defaults.
public enum OptimizerSettings: Codable, Hashable, Sendable {
    /// Adam / AdamW.
    case adam(AdamConfig)
    /// SGD, optionally with momentum.
    case sgd(SGDConfig)
    /// Adagrad.
    case adagrad(AdagradConfig)

    /// Floats of state per parameter, counting the parameter itself:
    /// Adam [w | m | v] = 3, Adagrad [w | acc] = 2, SGD [w] = 1 or [w | buf] = 2 with momentum.
    public var stateWidth: Int {
        switch self {
        case .adam: return 3
        case .adagrad: return 2
        case .sgd(let c): return c.momentum == 0 ? 1 : 2
        }
    }

    /// The optimizer's name as written in configs.
    public var kind: String {
        switch self {
        case .adam: return "adam"
        case .sgd: return "sgd"
        case .adagrad: return "adagrad"
        }
    }

    /// Throws `.config` when a setting is out of range.
    public func validate() throws {
        switch self {
        case .adam(let c): try c.validate()
        case .sgd(let c): try c.validate()
        case .adagrad(let c): try c.validate()
        }
    }

    private enum CodingKeys: String, CodingKey { case kind }

    /// Decodes `{"kind": ..., settings...}`; `adamw` is read as Adam with its weight decay.
    public init(from decoder: any Decoder) throws {
        let kind = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .kind)
        switch kind {
        case "adam", "adamw": self = .adam(try AdamConfig(from: decoder))
        case "sgd": self = .sgd(try SGDConfig(from: decoder))
        case "adagrad": self = .adagrad(try AdagradConfig(from: decoder))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .kind, in: try decoder.container(keyedBy: CodingKeys.self),
                debugDescription: "unknown optimizer kind \"\(kind)\" (expected adam, adamw, sgd or adagrad)")
        }
    }

    /// Encodes the `kind` tag and the settings side by side in one object.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        switch self {
        case .adam(let a): try a.encode(to: encoder)
        case .sgd(let s): try s.encode(to: encoder)
        case .adagrad(let a): try a.encode(to: encoder)
        }
    }
}
