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
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C shims: each is imported by exactly one Swift module.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CRdKafka", path: "Sources/CRdKafka"),
        .systemLibrary(name: "CLibPQ", path: "Sources/CLibPQ"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl"),

        // Numerics: dense Float32 tensors, forward and backward kernels.
        .target(name: "Tensor", dependencies: ["COpenBLAS"]),
        // CLIP model, configs, checkpoint I/O.
        .target(name: "CLIP", dependencies: ["Tensor"]),
        // libjpeg-turbo and libpng decoding; all setjmp/longjmp error handling stays in C.
        .target(name: "CImageCodecs", linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png")]),
        // Image decoding and CLIP preprocessing identical to Pillow/open_clip.
        .target(name: "ImageIO", dependencies: ["CImageCodecs"]),
        // Exact CLIP byte-level BPE tokenizer.
        .target(name: "CLIPTokenizer", dependencies: ["CZlib"],
                resources: [.copy("Resources/bpe_simple_vocab_16e6.txt.gz")]),
        // Image URL → bytes: http(s) through libcurl with limits, retries and an SSRF guard; file under roots.
        .target(name: "Fetch", dependencies: ["CCurl", .product(name: "Logging", package: "swift-log")]),
        // Synthetic captioned shape scenes for training demos and tests.
        .target(name: "Synthetic"),
        // The streaming pipeline's logic, talking to Kafka and Postgres through small protocols.
        .target(name: "Pipeline", dependencies: [
            "CLIP", "Tensor", "Synthetic",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        // Locks and other small concurrency building blocks.
        .target(name: "Executors"),
        // Zero-shot prompt templates shared by the CLI and the pipeline (no dependencies).
        .target(name: "ZeroShot"),
        // libpq wrapper: connections, binds, COPY, transactions, LISTEN/NOTIFY, migrations.
        .target(name: "Postgres", dependencies: [
            "CLibPQ", .product(name: "Logging", package: "swift-log"),
        ]),
        // Kafka record format and its validation (no C dependencies).
        .target(name: "Records"),
        // librdkafka consumer/producer/admin and the mock cluster, behind one seam.
        .target(name: "Kafka", dependencies: [
            "CRdKafka",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        .target(name: "clipd", dependencies: [
            "Pipeline",
            "Tensor", "CLIP", "CLIPTokenizer", "Fetch", "ImageIO", "Postgres", "ZeroShot", "Records", "Kafka",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),

        // Benchmarks/pg_writes.sh: COPY versus multi-row INSERT for the daemon's write batches.
        .executableTarget(name: "PostgresWritesBench", dependencies: [
            "Postgres", .product(name: "Logging", package: "swift-log"),
        ], path: "Benchmarks/PostgresWrites"),

        // The one test harness: repository paths, running clipd (one-shot and in the background),
        // PostgreSQL test servers and scratch databases, polling with deadlines, quiet loggers, the TCP relay.
        .target(name: "TestSupport", dependencies: [
            "Postgres", "Executors", .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/TestSupport"),
        .testTarget(name: "DaemonIntegrationTests", dependencies: [
            "TestSupport", "Postgres", "Kafka", .product(name: "Logging", package: "swift-log"),
        ]),

        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "CLIPTests", dependencies: ["CLIP", "Tensor"]),
        .testTarget(name: "ClipdCLITests", dependencies: ["CLIP", "TestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "CLIP", "Tensor"]),
        .testTarget(name: "CLIPTokenizerTests", dependencies: ["CLIPTokenizer", "TestSupport", "Executors"]),
        .testTarget(name: "FetchTests", dependencies: ["Fetch"]),
        // Deploy/ (example config, compose, Kubernetes, systemd) stays true to DaemonConfig.
        .testTarget(name: "DeployTests", dependencies: ["Pipeline"]),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO"], exclude: ["Data"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres"]),
        .testTarget(name: "ZeroShotTests", dependencies: ["ZeroShot"]),
        .testTarget(name: "SyntheticTests", dependencies: ["Synthetic"]),
        // The demo model: a short training run learns; the committed model still classifies.
        .testTarget(name: "DemoModelTests", dependencies: ["Pipeline", "CLIP", "Tensor", "Synthetic", "ImageIO", "CLIPTokenizer"]),
        .testTarget(name: "PostgresIntegrationTests", dependencies: [
            "Postgres", "Pipeline", "Synthetic", "clipd", "TestSupport", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "RecordsTests", dependencies: ["Records"]),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka"]),
        .testTarget(name: "KafkaIntegrationTests", dependencies: [
            "Kafka", "Records", "TestSupport", "Executors",
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
