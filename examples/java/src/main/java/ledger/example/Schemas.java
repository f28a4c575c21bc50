package ledger.example;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.message.SchemaStore;

/** The ledger's Avro schemas, read from the repository's schemas/ folder. */
final class Schemas {
  private Schemas() {}

  /** The current schema of every record, by full name (schemas/*.avsc). */
  static Map<String, Schema> current(Path dir) throws IOException {
    Map<String, Schema> out = new TreeMap<>();
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "*.avsc")) {
      for (Path f : files) {
        Schema s = new Schema.Parser().parse(f.toFile());
        out.put(s.getFullName(), s);
      }
    }
    return out;
  }

  /**
   * Every released writer schema (schemas/history), by the fingerprint in its file name:
   * {@code <full name>.<16 hex digits>.avsc}, the digits being the 8 header bytes of a
   * single-object encoded record in order. Versions released before the ledger used the
   * specification's fingerprints are there twice, under their legacy fingerprint too, so
   * records written with those stay readable by a standard decoder.
   */
  static History history(Path dir) throws IOException {
    History h = new History();
    try (DirectoryStream<Path> files = Files.newDirectoryStream(dir.resolve("history"), "*.avsc")) {
      for (Path f : files) {
        String name = f.getFileName().toString();
        String[] parts = name.substring(0, name.length() - ".avsc".length()).split("\\.");
        String hex = parts[parts.length - 1];
        byte[] header = new byte[8];
        for (int i = 0; i < 8; i++) {
          header[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
        }
        long fp = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN).getLong();
        Schema s = new Schema.Parser().parse(f.toFile()); // one parser per file: versions share names
        h.byFingerprint.put(fp, s);
        if (SchemaNormalization.parsingFingerprint64(s) != fp) {
          h.legacy.add(fp);
        }
      }
    }
    return h;
  }

  /** A SchemaStore over schemas/history. */
  static final class History implements SchemaStore {
    final Map<Long, Schema> byFingerprint = new HashMap<>();
    /** Fingerprints that are not the specification's fingerprint of their schema. */
    final Set<Long> legacy = new HashSet<>();

    @Override
    public Schema findByFingerprint(long fingerprint) {
      return byFingerprint.get(fingerprint);
    }
  }
}
