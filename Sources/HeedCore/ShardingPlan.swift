/// Maps feature keys to servers through a fixed set of virtual slots.
///
/// `slot(key) = mix64(key) % slotCount`, `server(key) = slotOwners[slot(key)]`.
/// The slot table is plain data: a checkpoint stores rows per slot, so a run saved
/// with S servers restores onto S' servers by reassigning slots.
public struct ShardingPlan: Equatable, Codable, Sendable {
    /// Number of virtual slots (fixed for the life of a model; default 4096).
    public var slotCount: Int
    /// `slotOwners[slot]` is the rank of the server that owns the slot.
    public var slotOwners: [Int]
    /// Number of servers the plan spreads over.
    public var serverCount: Int

    /// An even round-robin plan: slot `s` goes to server `s % serverCount`.
    public init(serverCount: Int, slotCount: Int = 4096) {
        precondition(serverCount > 0 && slotCount >= serverCount, "a plan needs at least one slot per server")
        self.slotCount = slotCount
        self.serverCount = serverCount
        self.slotOwners = (0..<slotCount).map { $0 % serverCount }
    }

    /// The virtual slot of a key. A power-of-two slot count (the default) takes the low
    /// bits, the same value as `%` without a 64-bit division: servers check every key of
    /// every row request against the plan.
    @inlinable
    public func slot(of key: UInt64) -> Int {
        let hash = KeyHash.mix64(key ^ 0x5EED_5107), n = UInt64(slotCount)
        return Int(n & (n &- 1) == 0 ? hash & (n &- 1) : hash % n)
    }

    /// The server rank that owns a key.
    @inlinable
    public func server(of key: UInt64) -> Int { slotOwners[slot(of: key)] }

    /// The chunk of a flat dense vector of `count` values that server `rank` owns:
    /// contiguous, in rank order, sizes differing by at most one.
    public static func denseRange(rank: Int, serverCount: Int, count: Int) -> Range<Int> {
        (rank * count / serverCount)..<((rank + 1) * count / serverCount)
    }
}
