// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "clipd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "clipd", targets: ["clipd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C shims: each is imported by exactly one Swift module.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CRdKafka", path: "Sources/CRdKafka"),
        .systemLibrary(name: "CLibPQ", path: "Sources/CLibPQ"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),

        // Numerics: dense Float32 tensors, forward and backward kernels.
        .target(name: "Tensor", dependencies: ["COpenBLAS"]),
        // CLIP model, configs, checkpoint I/O.
        .target(name: "CLIP", dependencies: ["Tensor"]),
        // Exact CLIP byte-level BPE tokenizer.
        .target(name: "CLIPTokenizer", dependencies: ["CZlib"]),
        // Zero-shot prompt templates shared by the CLI and the pipeline (no dependencies).
        .target(name: "ZeroShot"),
        // libpq wrapper: connections, binds, COPY, transactions, LISTEN/NOTIFY, migrations.
        .target(name: "Postgres", dependencies: [
            "CLibPQ", .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "clipd", dependencies: [
            "Tensor", "CLIP", "CLIPTokenizer", "Postgres", "ZeroShot",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Benchmarks/pg_writes.sh: COPY versus multi-row INSERT for the daemon's write batches.
        .executableTarget(name: "PostgresWritesBench", dependencies: [
            "Postgres", .product(name: "Logging", package: "swift-log"),
        ], path: "Benchmarks/PostgresWrites"),

        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "CLIPTests", dependencies: ["CLIP", "Tensor"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres"]),
        .testTarget(name: "ZeroShotTests", dependencies: ["ZeroShot"]),
        .testTarget(name: "PostgresIntegrationTests", dependencies: [
            "Postgres", .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
