import HeedCore
@testable import HeedTransport

/// One representative message per kind, with non-trivial field values.
enum SampleMessages {
    static func message(_ kind: MessageKind) -> Message {
        switch kind {
        case .register:
            return .register(Register(role: .worker, listenAddress: "tcp://127.0.0.1:7001", rankHint: 3))
        case .registerReply:
            var plan = ShardingPlan(serverCount: 3, slotCount: 64)
            plan.slotOwners[5] = 2
            return .registerReply(RegisterReply(rank: 1, serverAddresses: ["ipc:///tmp/s0", "tcp://10.0.0.2:9000", "ipc:///tmp/ü"],
                                                plan: plan, dataShards: [0, 4, 8], config: Array("{\"mode\":\"async\"}".utf8)))
        case .heartbeat:
            return .heartbeat(Heartbeat(rank: 2, role: .server, clock: 99_999, stats: ["rows": 1.5e7, "loss": 0.4312, "samples/s": 9876.5]))
        case .heartbeatAck:
            return .heartbeatAck(HeartbeatAck(slowestClock: 41, stopRequested: true, command: Control(name: "checkpoint", body: [1, 2, 3])))
        case .pullRows:
            return .pullRows(PullRows(tableID: 7, keys: [1, 5, 0xFFFF_FFFF_FFFF_FFF0, 0xFFFF_FFFF_FFFF_FFFF].sorted()))
        case .rowsReply:
            return .rowsReply(RowsReply(tableID: 7, dim: 3, values: (0..<12).map { Float($0) * 0.25 - 1 }))
        case .pushRows:
            return .pushRows(PushRows(tableID: 2, dim: 2, keys: [10, 20, 30], grads: [1, -2, 3.5, -4.25, 1e-30, -0], workerClock: 17))
        case .pullDense:
            return .pullDense(PullDense(tensorIDs: [3, 1, 2]))
        case .denseReply:
            return .denseReply(DenseReply(tensors: [DenseTensor(id: 1, shape: [2, 3], values: [1, 2, 3, 4, 5, 6]),
                                                    DenseTensor(id: 2, shape: [], values: [42]),
                                                    DenseTensor(id: 3, shape: [0, 4], values: [])]))
        case .pushDense:
            return .pushDense(PushDense(tensors: [DenseTensor(id: 9, shape: [4], values: [0.5, -0.5, 0.25, 8])], workerClock: 5))
        case .barrier:
            return .barrier(Barrier(name: "epoch-end", rank: 4, generation: 12))
        case .barrierRelease:
            return .barrierRelease(BarrierRelease(name: "epoch-end", generation: 12))
        case .shutdown:
            return .shutdown(Shutdown(reason: "training finished"))
        case .control:
            return .control(Control(name: "checkpoint", body: Array("{\"step\":1000}".utf8)))
        case .controlReply:
            return .controlReply(Control(name: "checkpoint", body: Array("{\"ok\":true}".utf8)))
        case .ack:
            return .ack(Ack(value: 4096))
        case .error:
            return .error(ErrorReply(code: .unauthenticated, message: "bad tag from peer ipc:///tmp/x"))
        }
    }

    /// Variants with empty collections and absent optionals.
    static let edgeCases: [Message] = [
        .register(Register(role: .server, listenAddress: "")),
        .pullRows(PullRows(tableID: 0, keys: [])),
        .rowsReply(RowsReply(tableID: 0, dim: 64, values: [])),
        .pushRows(PushRows(tableID: 1, dim: 1, keys: [], grads: [])),
        .pushRows(PushRows(tableID: 1, dim: 2, keys: [3], grads: [1, 2])),
        .heartbeat(Heartbeat(rank: 0, role: .worker, clock: 0)),
        .heartbeatAck(HeartbeatAck(slowestClock: 0)),
        .pushDense(PushDense(tensors: [])),
        .denseReply(DenseReply(tensors: [])),
        .control(Control(name: "")),
        .ack(Ack()),
    ]
}
