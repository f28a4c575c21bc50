package ledger.example;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.RawMessageDecoder;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads the ledger's events topic from the beginning to its current end with kafka-clients
 * (read_committed: only events of committed transactions) and decodes every record with Apache
 * Avro's BinaryMessageDecoder: the writer schema is looked up by the record's fingerprint in a
 * SchemaStore over schemas/history (every released version, legacy fingerprints included) and
 * resolved to the current schema of its name. Prints one JSON line per event.
 */
public final class ReadEvents {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static Map<String, Schema> current;

  private static Schema currentOf(String fullName) {
    return current.get(fullName);
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = Args.parse(argv, "bootstrap", "topic", "schemas");
    Path dir = Path.of(args.get("schemas"));
    current = Schemas.current(dir);
    Schemas.History history = Schemas.history(dir);
    Map<String, BinaryMessageDecoder<GenericRecord>> decoders = new HashMap<>();
    for (Map.Entry<String, Schema> e : current.entrySet()) {
      decoders.put(e.getKey(), new BinaryMessageDecoder<>(GenericData.get(), e.getValue(), history));
    }

    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    Args.addConfig(args, p);
    try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(p)) {
      List<TopicPartition> parts = consumer.partitionsFor(args.get("topic")).stream()
          .map(i -> new TopicPartition(i.topic(), i.partition()))
          .collect(Collectors.toList());
      consumer.assign(parts);
      consumer.seekToBeginning(parts);
      Map<TopicPartition, Long> end = consumer.endOffsets(parts); // the last stable offsets
      while (parts.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
        for (ConsumerRecord<String, byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          System.out.println(JSON.writeValueAsString(decode(r, history, decoders)));
        }
      }
    }
  }

  private static Map<String, Object> decode(ConsumerRecord<String, byte[]> r, Schemas.History history,
      Map<String, BinaryMessageDecoder<GenericRecord>> decoders) throws Exception {
    ByteBuffer v = ByteBuffer.wrap(r.value());
    // Which schema wrote it, so that the decoder of that name resolves it: the fingerprint
    // after the two magic bytes, little-endian.
    long fp = v.duplicate().order(ByteOrder.LITTLE_ENDIAN).getLong(2);
    Schema writer = history.findByFingerprint(fp);
    if (writer == null) {
      throw new IllegalStateException(String.format("%s/%d@%d: unknown fingerprint %016x", r.topic(), r.partition(), r.offset(), fp));
    }
    GenericRecord event;
    if (history.legacy.contains(fp)) {
      // A record written before the ledger used the specification's fingerprints.
      // BinaryMessageDecoder files every schema under its own (specification)
      // fingerprint, so it cannot find this one: decode the body after the 10-byte
      // header with the writer schema from the file name, resolved to the current one.
      Schema reader = currentOf(writer.getFullName());
      event = new RawMessageDecoder<GenericRecord>(GenericData.get(), writer, reader)
          .decode(ByteBuffer.wrap(r.value(), 10, r.value().length - 10));
    } else {
      event = decoders.get(writer.getFullName()).decode(v);
    }
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("partition", r.partition());
    out.put("offset", r.offset());
    out.put("type", writer.getFullName());
    out.put("legacy_fingerprint", history.legacy.contains(fp));
    out.put("event", JSON.readValue(GenericData.get().toString(event), Map.class));
    return out;
  }
}
