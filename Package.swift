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
        // The HTTP endpoint (/metrics, /healthz, /readyz; later the HTTP API): swift-nio based.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // C shims: each is imported by exactly one Swift module.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CRdKafka", path: "Sources/CRdKafka"),
        .systemLibrary(name: "CLibPQ", path: "Sources/CLibPQ"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl"),

        // Threads of our own for blocking and CPU-bound work, and the one lock-guarded value type.
        .target(name: "Executors"),
        // Numerics: dense Float32 tensors, forward and backward kernels.
        .target(name: "Tensor", dependencies: ["COpenBLAS", "CKernels"]),
        // Our C inference kernels: GEMM on weights packed once (AVX-512, AVX2+FMA and portable
        // micro-kernels chosen from cpuid), fused write-back, attention in cache, a thread pool.
        // Optimised in every configuration: debug builds run the model in tests, and -O0 kernels
        // would be ~50x slower than the OpenBLAS path they replace.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // CLIP model, configs, checkpoint I/O.
        .target(name: "CLIP", dependencies: ["Tensor"]),
        // libjpeg-turbo and libpng decoding; all setjmp/longjmp error handling stays in C.
        .target(name: "CImageCodecs", linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png"), .linkedLibrary("webpdemux"), .linkedLibrary("webp"), .linkedLibrary("gif")]),
        // Image decoding and CLIP preprocessing identical to Pillow/open_clip; the one ImageFormat.
        .target(name: "ImageIO", dependencies: ["CImageCodecs"]),
        // Exact CLIP byte-level BPE tokenizer.
        .target(name: "CLIPTokenizer", dependencies: ["CZlib"],
                resources: [.copy("Resources/bpe_simple_vocab_16e6.txt.gz")]),
        // Image URL → bytes: http(s) through libcurl with limits, retries and an SSRF guard; file under roots.
        .target(name: "Fetch", dependencies: ["CCurl", "Executors", "ImageIO", .product(name: "Logging", package: "swift-log")]),
        // Synthetic captioned shape scenes for training demos and tests.
        .target(name: "Synthetic"),
        // Kafka record format and its validation (no C dependencies).
        .target(name: "Records"),
        // Zero-shot label sets, prompt templates and the classifier built from them.
        .target(name: "ZeroShot", dependencies: ["CLIP", "Tensor"]),
        // libpq wrapper: connections, binds, COPY, transactions, LISTEN/NOTIFY, migrations. Names no clipd table.
        .target(name: "Postgres", dependencies: [
            "CLibPQ", "Executors", .product(name: "Logging", package: "swift-log"),
        ]),
        // librdkafka consumer/producer/admin and the mock cluster, behind one seam.
        .target(name: "Kafka", dependencies: [
            "CRdKafka", "Executors",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        // The stream: record parsing, image loading, batching, encoding, tagging, writing, offsets —
        // talking to Kafka and PostgreSQL through small protocols.
        .target(name: "Pipeline", dependencies: [
            "CLIP", "Tensor", "ImageIO", "Fetch", "Records", "ZeroShot", "Executors",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        // The fine-tune job: training set, runs, evaluation, WiSE-FT, gate, promotion; shape training.
        .target(name: "Training", dependencies: [
            "CLIP", "Tensor", "Pipeline", "ZeroShot", "Synthetic", "ImageIO", "Executors",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Every SQL statement about clipd's tables: the pipeline's and the job's stores, model
        // versions, label sets, search, migrations.
        .target(name: "Storage", dependencies: ["Postgres", "Pipeline", "Training", "ZeroShot", "CLIP"]),
        // The HTTP server of the daemon (/metrics, /healthz, /readyz): Hummingbird on swift-nio,
        // with per-request deadlines, header and connection limits; a ServiceLifecycle service.
        .target(name: "HTTPServer", dependencies: [
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // The HTTP API (/v1/search, /v1/records, /v1/embeddings, /v1/classify, /v1/status) and the
        // web page at /, over Storage, the pipeline's image loader and the model.
        .target(name: "ClipdAPI", dependencies: [
            "HTTPServer", "Storage", "Pipeline", "ZeroShot", "CLIP", "CLIPTokenizer", "ImageIO", "Executors", "Tensor",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        // The daemon's services and their wiring: consumer, pipeline, fine-tune job, notifications,
        // progress, HTTP endpoint, model registry, Kafka adapters, the development broker.
        .target(name: "Daemon", dependencies: [
            "Pipeline", "Training", "Storage", "Kafka", "Postgres", "Records", "Fetch", "CLIP", "CLIPTokenizer",
            "Tensor", "Executors", "ZeroShot",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            "HTTPServer", "ClipdAPI",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        // The command line: flags, config layering, logging and metrics bootstrap.
        .executableTarget(name: "clipd", dependencies: [
            "Daemon", "Storage", "Training", "Pipeline",
            "Tensor", "CLIP", "CLIPTokenizer", "Fetch", "ImageIO", "Postgres", "ZeroShot", "Records", "Kafka", "Synthetic",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),

        // Benchmarks/pg_writes.sh: COPY versus multi-row INSERT for the daemon's write batches.
        .executableTarget(name: "PostgresWritesBench", dependencies: [
            "Postgres", "Storage", .product(name: "Logging", package: "swift-log"),
        ], path: "Benchmarks/PostgresWrites"),

        // One test harness for every integration test: repository paths, running clipd (one-shot and
        // in the background), PostgreSQL test servers and scratch databases, polling with deadlines,
        // quiet loggers. (The TCP relay the tests use is Daemon's `TCPRelay`.)
        .target(name: "TestSupport", dependencies: [
            "Postgres", "Executors", .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/TestSupport"),
        .testTarget(name: "DaemonIntegrationTests", dependencies: [
            "TestSupport", "Daemon", "Postgres", "Kafka", "ImageIO", .product(name: "Logging", package: "swift-log"),
        ]),

        .testTarget(name: "ExecutorsTests", dependencies: ["Executors"]),
        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "CLIPTests", dependencies: ["CLIP", "Tensor"]),
        .testTarget(name: "ClipdCLITests", dependencies: ["CLIP", "TestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "CLIP", "Records", "Fetch", "ImageIO", "ZeroShot"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Pipeline", "CLIP", "Tensor", "ZeroShot"]),
        .testTarget(name: "CLIPTokenizerTests", dependencies: ["CLIPTokenizer", "Executors", "TestSupport"]),
        .testTarget(name: "FetchTests", dependencies: ["Fetch", "ImageIO"]),
        // The daemon's configuration, and Deploy/ (example config, compose, Kubernetes, systemd) true to it.
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "HTTPServer", "Kafka", .product(name: "Logging", package: "swift-log"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        .testTarget(name: "ClipdAPITests", dependencies: ["ClipdAPI", "HTTPServer", "ImageIO"]),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO"], exclude: ["Data"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage"]),
        .testTarget(name: "ZeroShotTests", dependencies: ["ZeroShot", "CLIP", "Tensor"]),
        .testTarget(name: "SyntheticTests", dependencies: ["Synthetic"]),
        // The demo model: a short training run learns; the committed model still classifies.
        .testTarget(name: "DemoModelTests", dependencies: ["Pipeline", "Training", "ZeroShot", "CLIP", "Tensor", "Synthetic", "ImageIO", "CLIPTokenizer"]),
        .testTarget(name: "PostgresIntegrationTests", dependencies: [
            "Postgres", "Storage", "Pipeline", "Training", "Daemon", "ZeroShot", "Synthetic", "CLIP", "CLIPTokenizer", "Fetch", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "RecordsTests", dependencies: ["Records"]),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka"]),
        .testTarget(name: "KafkaIntegrationTests", dependencies: [
            "Kafka", "Records", "Executors", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)

// libFuzzer targets built by SwiftPM (Fuzz/swiftpm.sh sets CLIPD_FUZZ and the sanitizer flags):
// each is Fuzz/Targets/<name>.swift, an executable whose `main` libFuzzer provides.
if Context.environment["CLIPD_FUZZ"] != nil {
    package.targets += [
        .executableTarget(name: "FuzzHTTP", dependencies: [
            "HTTPServer",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], path: "Fuzz/Targets", sources: ["http.swift"]),
        .executableTarget(name: "FuzzTokenizer", dependencies: ["CLIPTokenizer"], path: "Fuzz/Targets", sources: ["tokenizer.swift"]),
        .executableTarget(name: "FuzzAPI", dependencies: ["ClipdAPI", "HTTPServer"], path: "Fuzz/Targets", sources: ["api.swift"]),
    ]
}
