// The Java producer (kafka-clients) as a peer of the benchmark's Python clients.
//
//     java -cp <kafka libs>/*:<classes> ProducerBench <run.properties>
//
// Compiled at run time by benchmarks/_bench_java.py, which writes run.properties: the
// producer's settings (every key not starting with "bench.") and the run's
// ("bench.topic", "bench.records", ...), and the records' values and keys to a file.
// After one acknowledged warm-up record it measures from the first send until the last
// acknowledgement: wall time, the JVM's CPU time (every thread: JIT compiler and GC
// included) and, at the end, its peak RSS. It prints "key=value" lines after a line
// "--- result ---".

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;

public final class ProducerBench {
    private static final byte[] WARM_UP = "warm-up".getBytes();

    private final String topic;
    private final int records;
    private final byte[][] values;
    private final byte[][] keys;
    private final long deadline;
    private final KafkaProducer<byte[], byte[]> producer;
    private final Semaphore window;
    private final CountDownLatch done;
    private final AtomicLong acked = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private final AtomicReference<String> firstError = new AtomicReference<>();

    private ProducerBench(Map<String, String> bench, Properties config) throws IOException {
        topic = bench.get("topic");
        records = Integer.parseInt(bench.get("records"));
        deadline = System.nanoTime() + (long) (Double.parseDouble(bench.get("timeout_s")) * 1e9);
        try (DataInputStream in = open(bench.get("payloads"))) {
            values = readBlobs(in);
            keys = readBlobs(in);
        }
        window = new Semaphore(Integer.parseInt(bench.get("window")));
        done = new CountDownLatch(records);
        producer = new KafkaProducer<>(config);
    }

    private static DataInputStream open(String path) throws IOException {
        InputStream raw = Files.newInputStream(Path.of(path));
        return new DataInputStream(new BufferedInputStream(raw));
    }

    /** A count, then each blob as its length and its bytes (big-endian, as Python's struct ">I"). */
    private static byte[][] readBlobs(DataInputStream in) throws IOException {
        byte[][] blobs = new byte[in.readInt()][];
        for (int i = 0; i < blobs.length; i++) {
            blobs[i] = new byte[in.readInt()];
            in.readFully(blobs[i]);
        }
        return blobs;
    }

    private ProducerRecord<byte[], byte[]> record(int i) {
        byte[] key = keys.length == 0 ? null : keys[i % keys.length];
        return new ProducerRecord<>(topic, key, values[i % values.length]);
    }

    private void outcome(Exception error) {
        if (error == null) {
            acked.incrementAndGet();
        } else {
            failed.incrementAndGet();
            firstError.compareAndSet(null, error.getClass().getSimpleName() + ": " + error.getMessage());
        }
        window.release();
        done.countDown();
    }

    private long remainingNanos() {
        return Math.max(0L, deadline - System.nanoTime());
    }

    private void acquire() throws InterruptedException {
        if (!window.tryAcquire(remainingNanos(), TimeUnit.NANOSECONDS)) {
            throw new IllegalStateException("timed out: the window stayed full until the deadline");
        }
    }

    private void awaitAll() throws InterruptedException {
        producer.flush();
        if (!done.await(remainingNanos(), TimeUnit.NANOSECONDS)) {
            throw new IllegalStateException("timed out: records unacknowledged at the deadline");
        }
    }

    /** send() + a callback per record, at most "window" unacknowledged; flush at the end. */
    private void throughput() throws InterruptedException {
        Callback callback = (metadata, error) -> outcome(error);
        for (int i = 0; i < records; i++) {
            acquire();
            producer.send(record(i), callback);
        }
        awaitAll();
    }

    /** Transaction after transaction: begin, send its records, commit (commit flushes). */
    private void transactional(int size) throws InterruptedException {
        Callback callback = (metadata, error) -> outcome(error);
        for (int start = 0; start < records; start += size) {
            producer.beginTransaction();
            for (int i = start; i < Math.min(records, start + size); i++) {
                acquire();
                producer.send(record(i), callback);
            }
            producer.commitTransaction();
        }
        awaitAll();
    }

    /** Records offered at "rate" per second; each one's latency runs from when it was due. */
    private void latency(int rate, double[] latencies) throws InterruptedException {
        long start = System.nanoTime();
        int i = 0;
        while (i < records) {
            int due = (int) Math.min(records, (System.nanoTime() - start) * rate / 1_000_000_000L + 1);
            for (int j = i; j < due; j++) {
                final int index = j;
                final long dueAt = start + (long) (j * 1e9 / rate);
                acquire();
                producer.send(record(j), (metadata, error) -> {
                    latencies[index] = (System.nanoTime() - dueAt) / 1e9;
                    outcome(error);
                });
            }
            i = Math.max(i, due);
            long next = start + (long) (i * 1e9 / rate) - System.nanoTime();
            if (next > 0) {
                LockSupport.parkNanos(next);
            }
        }
        awaitAll();
    }

    /** User+system CPU of the whole JVM, every thread, in nanoseconds. */
    private static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    /** Fields 14 and 15 of /proc/self/stat: user and system clock ticks. */
    private static long[] cpuTicks() throws IOException {
        String stat = Files.readString(Path.of("/proc/self/stat"));
        String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return new long[] {Long.parseLong(fields[11]), Long.parseLong(fields[12])};
    }

    /** VmHWM of /proc/self/status, in kB. */
    private static long peakRssKb() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                return Long.parseLong(line.split("\\s+")[1]);
            }
        }
        return -1;
    }

    public static void main(String[] args) throws Exception {
        Properties all = new Properties();
        try (Reader reader = Files.newBufferedReader(Path.of(args[0]))) {
            all.load(reader);
        }
        Map<String, String> bench = new TreeMap<>();
        Properties config = new Properties();
        for (String name : all.stringPropertyNames()) {
            if (name.startsWith("bench.")) {
                bench.put(name.substring("bench.".length()), all.getProperty(name));
            } else {
                config.put(name, all.getProperty(name));
            }
        }
        Map<String, Object> result = new TreeMap<>();
        ProducerBench run = new ProducerBench(bench, config);
        int transactionSize = Integer.parseInt(bench.get("transaction_size"));
        int rate = Integer.parseInt(bench.get("rate"));
        double[] latencies = new double[rate > 0 ? run.records : 0];
        java.util.Arrays.fill(latencies, Double.NaN);
        try {
            if (transactionSize > 0) {
                run.producer.initTransactions();
                run.producer.beginTransaction();
            }
            run.producer.send(new ProducerRecord<>(run.topic, null, WARM_UP)).get();
            if (transactionSize > 0) {
                run.producer.commitTransaction();
            }
            long[] ticks = cpuTicks();
            long cpu = processCpuNanos();
            long wall = System.nanoTime();
            if (rate > 0) {
                run.latency(rate, latencies);
            } else if (transactionSize > 0) {
                run.transactional(transactionSize);
            } else {
                run.throughput();
            }
            result.put("wall_ns", System.nanoTime() - wall);
            result.put("cpu_ns", processCpuNanos() - cpu);
            long[] after = cpuTicks();
            result.put("user_ticks", after[0] - ticks[0]);
            result.put("system_ticks", after[1] - ticks[1]);
        } catch (Exception error) {
            result.put("error", error.getClass().getSimpleName() + ": " + error.getMessage());
        }
        result.put("acked", run.acked.get());
        result.put("failed", run.failed.get());
        String firstError = run.firstError.get();
        if (firstError != null) {
            result.put("first_error", firstError);
        }
        result.put("peak_rss_kb", peakRssKb());
        if (rate > 0) {
            try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(
                    Files.newOutputStream(Path.of(bench.get("latencies")))))) {
                for (double latency : latencies) {
                    out.writeDouble(latency);
                }
            }
        }
        run.producer.close(java.time.Duration.ofSeconds(10));
        System.out.println("--- result ---");
        for (Map.Entry<String, Object> entry : result.entrySet()) {
            String value = String.valueOf(entry.getValue()).replaceAll("[\\r\\n]+", " ");
            System.out.println(entry.getKey() + "=" + value);
        }
        System.out.flush();
        System.exit(0);
    }
}
