// swift-tools-version:6.0
// Heed: a distributed parameter-server trainer for e-commerce recommenders.
//
// Dependency direction is one-way (see STYLE.md, habit 12):
//   heed (executable) -> roles (HeedServer, HeedWorker, HeedCoordinator)
//     -> building blocks (HeedTransport, HeedLayers, HeedOptim, HeedModels,
//        HeedCheckpoint, HeedData) -> HeedCore -> C shims.
// HeedBench (the measurements behind `heed bench ...`) and HeedReport (`heed report`)
// sit beside the executable: they may use the library modules, and none uses them.
import PackageDescription

let package = Package(
    name: "Heed",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "heed", targets: ["heed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // HMAC-SHA256 for the cluster secret (wire format authentication).
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // Tests only: parses the Kubernetes recipe (KubernetesManifestTests).
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        // The run config's TOML parser (toml++ underneath; docs/config.md).
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        // Structured logs (role and rank in every line) and metrics (an abstraction the
        // roles record into; Prometheus text exposition in the executable).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C libraries from Debian (libnng-dev, libopenblas-dev, zlib1g-dev).
        .systemLibrary(name: "CNNG", path: "Sources/CNNG"),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Hot numeric kernels in C: Swift's sqrt keeps an errno branch that blocks
        // vectorisation of Adam loops (PLATFORM.md).
        .target(name: "CKernels", path: "Sources/CKernels"),

        // Core types shared by everything: feature keys, seeded RNG, checksums, errors.
        .target(name: "HeedCore", dependencies: ["CZlib", .product(name: "TOMLKit", package: "TOMLKit")]),

        // Building blocks.
        .target(name: "HeedLayers", dependencies: ["HeedCore", "CBLAS", "CKernels"]),
        .target(name: "HeedOptim", dependencies: ["HeedCore", "CKernels"]),
        .target(name: "HeedTransport", dependencies: ["HeedCore", "CNNG", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "HeedData", dependencies: ["HeedCore", "CZlib"]),
        .target(name: "HeedCheckpoint", dependencies: ["HeedCore"]),
        // Watching a run: the metrics log (JSON lines), resident memory, the /metrics listener.
        .target(name: "HeedObserve", dependencies: ["HeedCore", .product(name: "Logging", package: "swift-log"),
                                                    .product(name: "CoreMetrics", package: "swift-metrics")]),
        .target(name: "HeedModels", dependencies: ["HeedCore", "HeedLayers", "HeedData"]),

        // Roles.
        .target(name: "HeedServer", dependencies: ["HeedCore", "HeedOptim", "HeedTransport", "HeedCheckpoint", "HeedObserve", "CKernels",
                                               .product(name: "Logging", package: "swift-log"), .product(name: "CoreMetrics", package: "swift-metrics")]),
        .target(name: "HeedWorker", dependencies: ["HeedCore", "HeedTransport", "HeedModels", "HeedData", "HeedLayers", "HeedCheckpoint", "HeedObserve",
                                               .product(name: "Logging", package: "swift-log"), .product(name: "CoreMetrics", package: "swift-metrics")]),
        .target(name: "HeedCoordinator", dependencies: ["HeedCore", "HeedTransport", "HeedCheckpoint", "HeedObserve",
                                               .product(name: "Logging", package: "swift-log"), .product(name: "CoreMetrics", package: "swift-metrics")]),

        // Benchmarks: what `heed bench ...` measures, kept out of the modules users run.
        .target(name: "HeedBench", dependencies: ["HeedCore", "HeedLayers", "HeedTransport", "HeedData", "HeedServer",
                                                  "CBLAS", "CNNG", "CKernels"]),

        // `heed report`: a run's metrics log (docs/metrics-log.md) drawn as one HTML page.
        .target(name: "HeedReport", dependencies: ["HeedCore"]),

        // The one binary.
        .executableTarget(
            name: "heed",
            dependencies: [
                "HeedCore", "HeedLayers", "HeedOptim", "HeedTransport", "HeedData",
                "HeedCheckpoint", "HeedModels", "HeedServer", "HeedWorker", "HeedCoordinator",
                "HeedObserve", "HeedBench", "HeedReport", "CBLAS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        .testTarget(name: "HeedCoreTests", dependencies: ["HeedCore"]),
        .testTarget(name: "HeedLayersTests", dependencies: ["HeedLayers", "HeedCore"]),
        .testTarget(name: "HeedOptimTests", dependencies: ["HeedOptim", "HeedCore"]),
        .testTarget(name: "HeedTransportTests", dependencies: ["HeedTransport", "HeedCore", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "HeedDataTests", dependencies: ["HeedData", "HeedCore"]),
        .testTarget(name: "HeedModelsTests", dependencies: ["HeedModels", "HeedLayers", "HeedCore", "HeedData", "HeedServer", "HeedOptim", "HeedWorker"],
                    // Read by path (#filePath) rather than bundled; written by scripts/reference-models.py.
                    exclude: ["Fixtures"]),
        .testTarget(name: "HeedCoordinatorTests", dependencies: ["HeedCoordinator", "HeedCheckpoint", "HeedCore"]),
        .testTarget(name: "HeedClusterTests", dependencies: ["heed", "HeedLayers", "HeedCoordinator", "HeedServer", "HeedWorker", "HeedModels", "HeedData", "HeedTransport", "HeedCheckpoint", "HeedObserve", "HeedCore",
                                                           .product(name: "Logging", package: "swift-log"), .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "HeedCheckpointTests", dependencies: ["HeedCheckpoint", "HeedCore"]),
        .testTarget(name: "HeedBenchTests", dependencies: ["HeedBench", "HeedLayers", "HeedTransport", "HeedData", "HeedCore"]),
        .testTarget(name: "HeedReportTests", dependencies: ["HeedReport", "HeedCore"]),
        .testTarget(name: "HeedServerTests", dependencies: ["HeedServer", "HeedOptim", "HeedTransport", "HeedCheckpoint", "HeedCore"]),
    ],
    swiftLanguageModes: [.v5]
)
