import HeedCore

/// The coordinator's bookkeeping, free of any transport: ranks, addresses, heartbeats,
/// worker clocks, barriers and the failure verdict. The network handler calls into it
/// under one lock; tests drive it directly with explicit times.
public final class Membership {
    /// What a registered role told us and when we last heard from it.
    public struct Member: Sendable {
        public var id: RoleID
        /// Address the role listens on (servers), or "" (workers).
        public var address: String
        /// Monotonic time of the last message, in nanoseconds.
        public var lastSeen: UInt64
        /// Last reported step (workers) or applied-update count (servers).
        public var clock: Int
        /// True once the role has said goodbye; it is no longer expected to heartbeat.
        public var finished = false
    }

    /// Expected role counts.
    public let serverCount: Int
    public let workerCount: Int
    /// Silence longer than this (ns) declares a role failed.
    public let failureTimeout: UInt64

    public private(set) var members: [RoleID: Member] = [:]
    private var barriers: [String: Set<Int>] = [:]
    private var released: Set<String> = []

    public init(serverCount: Int, workerCount: Int, failureTimeoutNanoseconds: UInt64) {
        self.serverCount = serverCount
        self.workerCount = workerCount
        self.failureTimeout = failureTimeoutNanoseconds
    }

    /// Registers a role and gives it a rank: the hint if free and in range, else the lowest
    /// free rank. Re-registering with the same address returns the same rank (a retried
    /// request must not take two ranks).
    public func register(role: Role, address: String, rankHint: Int?, now: UInt64) throws -> RoleID {
        let limit = role == .server ? serverCount : workerCount
        if let existing = members.values.first(where: { $0.id.role == role && !$0.address.isEmpty && $0.address == address }) {
            members[existing.id]?.lastSeen = now
            return existing.id
        }
        let taken = Set(members.keys.filter { $0.role == role }.map(\.rank))
        let rank: Int
        if let h = rankHint, h >= 0, h < limit, !taken.contains(h) {
            rank = h
        } else if let free = (0..<limit).first(where: { !taken.contains($0) }) {
            rank = free
        } else {
            throw HeedError(.config, "all \(limit) \(role) ranks are taken; \(address.isEmpty ? "a \(role)" : address) cannot join")
        }
        let id = RoleID(role, rank)
        members[id] = Member(id: id, address: address, lastSeen: now, clock: 0)
        return id
    }

    /// True when every expected server and worker has registered.
    public var isComplete: Bool {
        members.keys.filter { $0.role == .server }.count == serverCount
            && members.keys.filter { $0.role == .worker }.count == workerCount
    }

    /// Server addresses ordered by rank, once all servers registered.
    public var serverAddresses: [String]? {
        let servers = (0..<serverCount).compactMap { members[RoleID(.server, $0)]?.address }
        return servers.count == serverCount ? servers : nil
    }

    /// Records a heartbeat (or any message) from `id` with its clock.
    public func heard(from id: RoleID, clock: Int?, now: UInt64) throws {
        guard members[id] != nil else { throw HeedError(.protocolViolation, "\(id) is not registered") }
        members[id]!.lastSeen = now
        if let clock { members[id]!.clock = max(members[id]!.clock, clock) }
    }

    /// Marks a role as done: it stops being watched for heartbeats.
    public func finished(_ id: RoleID) { members[id]?.finished = true }

    /// The slowest worker's clock (for bounded staleness).
    /// A worker that has not registered yet counts as clock 0: otherwise the first worker
    /// to start could run ahead of one still joining, past the bound.
    public var minimumWorkerClock: Int {
        let clocks = members.values.filter { $0.id.role == .worker }.map(\.clock)
        return clocks.count < workerCount ? 0 : clocks.min() ?? 0
    }

    /// Whether a worker at `clock` may start its next step under a staleness bound.
    public func mayProceed(clock: Int, staleness: Int) -> Bool {
        clock - minimumWorkerClock <= staleness
    }

    /// Enters barrier `name` for `rank` of `participants` ranks; true once all have entered.
    /// A released barrier stays released, so a retried call gets the same answer.
    public func arrive(barrier name: String, rank: Int, participants: Int) -> Bool {
        if released.contains(name) { return true }
        barriers[name, default: []].insert(rank)
        if barriers[name]!.count >= participants {
            released.insert(name)
            barriers[name] = nil
            return true
        }
        return false
    }

    /// Roles that have been silent longer than the failure timeout, ordered for reporting.
    public func failedMembers(now: UInt64) -> [RoleID] {
        members.values
            .filter { !$0.finished && now > $0.lastSeen && now - $0.lastSeen > failureTimeout }
            .map(\.id)
            .sorted { ($0.role.rawValue, $0.rank) < ($1.role.rawValue, $1.rank) }
    }
}
