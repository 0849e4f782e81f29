import Foundation
import Logging

/// Which role this process plays and, once known, its rank: the metadata every log line
/// and every metrics-log line carries. A server or worker learns its rank only when it
/// registers, so the rank is set later and read by every logger made before.
public final class RoleIdentity: @unchecked Sendable {
    /// `coordinator`, `server`, `worker` or `launcher` (the role names of the metrics log).
    public let role: String
    private let lock = NSLock()
    private var _rank: Int?

    /// An identity for `role`; coordinators and launchers are rank 0 from the start.
    public init(role: String, rank: Int? = nil) {
        self.role = role
        _rank = rank ?? (role == "coordinator" || role == "launcher" ? 0 : nil)
    }

    /// The rank, once assigned.
    public var rank: Int? { lock.withLock { _rank } }

    /// Records the rank the coordinator gave this role.
    public func assign(rank: Int) { lock.withLock { _rank = rank } }

    /// How log lines name the role: `worker 1`, `server 0`, `coordinator`, `train` (the launcher).
    public var label: String {
        switch role {
        case "launcher": return "train"
        case "coordinator": return role
        default: return rank.map { "\(role) \($0)" } ?? role
        }
    }

    /// Adds `role` and (once known) `rank` to every log line.
    public var metadataProvider: Logger.MetadataProvider {
        Logger.MetadataProvider { [self] in
            var m: Logger.Metadata = ["role": .string(role)]
            if let rank { m["rank"] = .stringConvertible(rank) }
            return m
        }
    }
}
