package ledger.example;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.generic.GenericRecordBuilder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Produces ledger commands straight to Kafka, as an upstream Java system would: kafka-clients
 * with its default partitioner (murmur2 of the key) and Apache Avro's single-object encoding
 * (BinaryMessageEncoder) with the schemas from schemas/. See docs/producing-commands.md.
 *
 * <p>It sends one command of every type for the accounts {@code <run>-a}, {@code <run>-b} and
 * {@code <run>-c} (command ids {@code <run>-1} … {@code <run>-10}) and prints one JSON line per
 * record: open three accounts, deposit into a (with expected_version), withdraw, transfer a→b,
 * close c, then three commands the ledger must reject: a CreditTransfer and a RefundTransfer
 * (saga-internal commands an upstream producer may not send) and a deposit whose
 * expected_version is stale.
 */
public final class ProduceCommands {
  private static final ObjectMapper JSON = new ObjectMapper();

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = Args.parse(argv, "bootstrap", "topic-prefix", "schemas", "run");
    Map<String, Schema> schemas = Schemas.current(Path.of(args.get("schemas")));
    String run = args.get("run");
    String a = run + "-a", b = run + "-b", c = run + "-c";
    long now = System.currentTimeMillis();

    List<Object[]> commands = new ArrayList<>(); // {full name, field values}
    commands.add(cmd("OpenAccount", run, 1, a, null, Map.of("owner", "Ada Lovelace", "currency", "EUR")));
    commands.add(cmd("OpenAccount", run, 2, b, null, Map.of("owner", "Grace Hopper", "currency", "EUR", "overdraft_limit", 0L)));
    commands.add(cmd("OpenAccount", run, 3, c, null, Map.of("owner", "Émilie du Châtelet", "currency", "EUR")));
    commands.add(cmd("DepositFunds", run, 4, a, 1L, Map.of("amount", 10_000L, "reference", "salary")));
    commands.add(cmd("WithdrawFunds", run, 5, a, null, Map.of("amount", 2_500L)));
    commands.add(cmd("TransferFunds", run, 6, a, null,
        Map.of("transfer_id", run + "-t1", "from_account_id", a, "to_account_id", b, "amount", 3_000L, "reference", "rent")));
    commands.add(cmd("CloseAccount", run, 7, c, null, Map.of()));
    commands.add(cmd("CreditTransfer", run, 8, b, null,
        Map.of("transfer_id", run + "-forged", "from_account_id", a, "to_account_id", b, "amount", 999_999L, "currency", "EUR")));
    commands.add(cmd("RefundTransfer", run, 9, a, null,
        Map.of("transfer_id", run + "-forged", "from_account_id", a, "to_account_id", b, "amount", 100L, "currency", "EUR")));
    commands.add(cmd("DepositFunds", run, 10, a, 1L, Map.of("amount", 1L)));

    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    Args.addConfig(args, p);
    String topic = args.get("topic-prefix") + "commands";
    Map<String, BinaryMessageEncoder<GenericRecord>> encoders = new HashMap<>();
    try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(p)) {
      for (Object[] cmd : commands) {
        String name = "ledger.commands." + cmd[0];
        Schema schema = schemas.get(name);
        @SuppressWarnings("unchecked")
        Map<String, Object> fields = (Map<String, Object>) cmd[1];
        GenericRecordBuilder rb = new GenericRecordBuilder(schema); // unset fields get their defaults
        fields.forEach(rb::set);
        rb.set("issued_at", now); // timestamp-millis: a long with GenericData
        GenericRecord record = rb.build();
        ByteBuffer value = encoders
            .computeIfAbsent(name, n -> new BinaryMessageEncoder<>(GenericData.get(), schema))
            .encode(record);
        byte[] bytes = new byte[value.remaining()];
        value.get(bytes);
        String key = (String) fields.get("aggregate_id"); // for TransferFunds: from_account_id
        ProducerRecord<String, byte[]> rec = new ProducerRecord<>(topic, key, bytes);
        rec.headers().add("type", name.getBytes(StandardCharsets.UTF_8));
        RecordMetadata md = producer.send(rec).get();
        System.out.println(JSON.writeValueAsString(Map.of(
            "type", name, "command_id", fields.get("command_id"), "key", key,
            "partition", md.partition(), "offset", md.offset())));
      }
    }
  }

  private static Object[] cmd(String type, String run, int n, String aggregate, Long expectedVersion, Map<String, Object> body) {
    Map<String, Object> f = new HashMap<>(body);
    f.put("command_id", run + "-" + n);
    f.put("aggregate_id", aggregate);
    f.put("expected_version", expectedVersion); // ["null","long"]
    f.put("correlation_id", run);
    return new Object[] {type, f};
  }
}
