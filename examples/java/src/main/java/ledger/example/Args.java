package ledger.example;

import java.util.HashMap;
import java.util.Map;

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
}
