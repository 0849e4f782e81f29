import HeedCore
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// One kept event as the external sort stores it (32 bytes).
///
/// Ordered by (raw user id, time, file order): the order `SampleBuilder` reads users (ascending
/// raw id) and each user's events (time, then file order), so merging runs gives the records
/// the in-memory sort gives.
struct EventRow: SpillableRow {
    /// Raw user id.
    var userRaw: UInt64
    /// Unix seconds, or the position within the user's line for timestamp-less data.
    var time: Int64
    /// File order among kept events (the tie-breaker of equal times).
    var order: UInt32
    /// Dense item index.
    var item: Int32
    /// Rating (NaN when the dataset or the row has none).
    var rating: Float
    /// `EventType.rawValue`.
    var type: UInt8

    static func < (a: EventRow, b: EventRow) -> Bool {
        if a.userRaw != b.userRaw { return a.userRaw < b.userRaw }
        if a.time != b.time { return a.time < b.time }
        return a.order < b.order
    }

    static func == (a: EventRow, b: EventRow) -> Bool { a.userRaw == b.userRaw && a.time == b.time && a.order == b.order }
}

/// A paid price of an item, for the per-item median (`SampleBuilder`'s price tables).
struct PriceSample: SpillableRow {
    var item: Int32
    var price: Float

    static func < (a: PriceSample, b: PriceSample) -> Bool { a.item != b.item ? a.item < b.item : a.price < b.price }
}

extension Int64: SpillableRow {}

/// The events of a prepare that runs within `--memory-budget`: an external sort of kept events
/// by (user, time), plus the all-event samples the global tables need (paid prices for item
/// medians, times for the time split's quantiles), each an `ExternalSorter` in one folder.
///
/// Budget: the loader's id maps and side tables grow with distinct ids and stay resident; the
/// run buffers get what the budget leaves, measured from the process's resident size whenever
/// a run starts (never less than a sixteenth of the budget). A run costs 1.5x its rows: Swift's
/// sort borrows a half-size scratch buffer.
package final class EventSpill {
    /// Bytes the whole prepare should stay within.
    package let budget: Int
    let events: ExternalSorter<EventRow>
    let prices: ExternalSorter<PriceSample>
    /// Present when the time split must compute its quantiles.
    let times: ExternalSorter<Int64>?
    /// `--part k/N`: only users with `mix64(raw) % N == k` keep their events.
    let part: (index: Int, count: Int)?
    /// Events of the current run before it is spilled (lowered as the id tables grow).
    private(set) var runRows = 0
    /// Events added since the run started (each adds at most one row to each sorter).
    private var eventsInRun = 0
    /// `eventsInRun` at which the budget is checked again against the resident size.
    private var nextCheck = 0
    /// Runs spilled so far (one per full buffer).
    private(set) var spills = 0
    /// Whether the id tables alone exceed the budget (the run floor applies).
    private(set) var overBudget = false
    private let meter: PrepareProgress?

    /// - Parameters:
    ///   - directory: an empty folder for the run files (removed by the caller).
    ///   - needsTimes: whether the time split's quantiles must be computed from all events.
    package init(directory: String, budget: Int, needsTimes: Bool, part: (index: Int, count: Int)? = nil, meter: PrepareProgress? = nil) {
        self.budget = max(1, budget)
        events = ExternalSorter(directory: directory, name: "events")
        prices = ExternalSorter(directory: directory, name: "prices")
        times = needsTimes ? ExternalSorter(directory: directory, name: "times") : nil
        self.part = part
        self.meter = meter
        startRun()
    }

    /// Bytes one buffered event costs (its row and samples, with the sort's scratch).
    private var bytesPerEvent: Int {
        (ExternalSorter<EventRow>.rowBytes + ExternalSorter<PriceSample>.rowBytes + (times == nil ? 0 : 8)) * 3 / 2
    }

    /// Sizes the next run from what the budget leaves beside the resident id tables, and
    /// reserves its buffers whole (growing them by doubling would briefly hold two copies).
    private func startRun() {
        eventsInRun = 0
        runRows = Int.max
        resize()
        events.reserve(runRows)
        prices.reserve(runRows)
        times?.reserve(runRows)
    }

    /// Sets `runRows` to what the budget leaves beside the rest of the process (the id tables
    /// keep growing while a run fills, so this runs again every so often).
    private func resize() {
        let buffered = events.buffer.count * ExternalSorter<EventRow>.rowBytes + prices.buffer.count * ExternalSorter<PriceSample>.rowBytes
            + (times?.buffer.count ?? 0) * 8
        let rest = max(0, (ResidentMemory.bytes() ?? buffered) - buffered)
        let floor = max(1, budget / 16)
        let left = budget - rest
        overBudget = overBudget || left < floor
        runRows = min(runRows, max(16, max(floor, left) / bytesPerEvent))
        nextCheck = eventsInRun + max(16, min(1 << 20, runRows / 16))
    }

    /// Counts one added event; true when the run is full and must be spilled.
    @inline(__always)
    func countEvent() -> Bool {
        eventsInRun += 1
        if eventsInRun >= nextCheck { resize() }
        return eventsInRun >= runRows
    }

    /// Whether `userRaw`'s events belong to this prepare (always, without `--part`).
    @inline(__always)
    func keeps(userRaw: UInt64) -> Bool {
        guard let part else { return true }
        return Int(KeyHash.mix64(userRaw) % UInt64(part.count)) == part.index
    }

    /// Sorts and writes the buffered rows as runs, then sizes the next run.
    func spill() throws {
        meter?.events(events.count)
        meter?.enter(.spill)
        try events.spill()
        try prices.spill()
        try times?.spill()
        spills += 1
        meter?.enter(.read)
        startRun()
    }

    /// Ends loading: the last rows are sorted (in memory when nothing was spilled).
    func finish() throws {
        if spills > 0 { meter?.enter(.merge) }
        try events.finish()
        try prices.finish()
        try times?.finish()
    }

    /// Deletes every run file.
    func removeRuns() {
        events.removeRuns()
        prices.removeRuns()
        times?.removeRuns()
    }
}
