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
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
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
        // Kafka record format and its validation (no C dependencies).
        .target(name: "Records"),
        // librdkafka consumer/producer/admin and the mock cluster, behind one seam.
        .target(name: "Kafka", dependencies: [
            "CRdKafka",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        .target(name: "clipd", dependencies: [
            "Tensor", "CLIP", "CLIPTokenizer", "Records", "Kafka",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "CLIPTests", dependencies: ["CLIP", "Tensor"]),
        .testTarget(name: "RecordsTests", dependencies: ["Records"]),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka"]),
        .testTarget(name: "KafkaIntegrationTests", dependencies: [
            "Kafka", "Records",
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
