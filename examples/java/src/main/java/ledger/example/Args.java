package ledger.example;

import java.io.FileReader;
import java.io.IOException;
import java.io.Reader;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;

/** --name value arguments, all required. */
final class Args {
  private Args() {}

  static Map<String, String> parse(String[] argv, String... required) {
    Map<String, String> out = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      if (!argv[i].startsWith("--")) {
        throw new IllegalArgumentException("want --name value pairs, got " + argv[i]);
      }
      out.put(argv[i].substring(2), argv[i + 1]);
    }
    for (String r : required) {
      if (!out.containsKey(r)) {
        throw new IllegalArgumentException("missing --" + r);
      }
    }
    return out;
  }

  /**
   * Adds the client properties of the file named by --config, if given: the
   * connection's security (security.protocol, sasl.*, ssl.*), as a Kafka
   * client properties file.
   */
  static void addConfig(Map<String, String> args, Properties p) throws IOException {
    String f = args.get("config");
    if (f == null) {
      return;
    }
    Properties extra = new Properties();
    try (Reader r = new FileReader(f)) {
      extra.load(r);
    }
    p.putAll(extra);
  }
}
