/// The three kinds of process in a Heed cluster.
public enum Role: UInt8, Codable, Sendable, CustomStringConvertible {
    case coordinator = 0, server = 1, worker = 2

    public var description: String {
        switch self {
        case .coordinator: "coordinator"
        case .server: "server"
        case .worker: "worker"
        }
    }
}

/// A role and its rank within that role, e.g. `server 1`.
public struct RoleID: Hashable, Codable, Sendable, CustomStringConvertible {
    public var role: Role
    public var rank: Int
    public init(_ role: Role, _ rank: Int) { self.role = role; self.rank = rank }
    public var description: String { "\(role) \(rank)" }
}
