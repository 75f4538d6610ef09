// CuratorCache (a cache on a persistent recursive watch) against one server, as a
// Curator user runs it: every create, change and delete under a fresh path must reach
// the cache's listener, in order, with no connection loss along the way.
//
// Usage: java -cp <curator jars> CuratorCacheCheck.java HOST:PORT NODES
// Prints "OK <events>" and exits 0, or prints what went wrong and exits 1.

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;

public class CuratorCacheCheck {
    private static final long EVENT_TIMEOUT_S = 20;

    public static void main(String[] args) throws Exception {
        String connect = args[0];
        int nodes = Integer.parseInt(args[1]);
        List<ConnectionState> states = new CopyOnWriteArrayList<>();
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        int failures = 0;
        try (CuratorFramework client = CuratorFrameworkFactory.newClient(
                connect, 15_000, 10_000, new RetryNTimes(3, 200))) {
            client.getConnectionStateListenable().addListener((c, state) -> states.add(state));
            client.start();
            if (!client.blockUntilConnected(20, TimeUnit.SECONDS)) {
                System.out.println("FAIL not connected within 20 s");
                System.exit(1);
            }
            String base = "/curator-cache-" + System.nanoTime();
            client.create().forPath(base, bytes("base"));
            try (CuratorCache cache = CuratorCache.build(client, base)) {
                cache.listenable().addListener(CuratorCacheListener.builder()
                        .forCreates(n -> events.add("create " + n.getPath() + " " + text(n.getData())))
                        .forChanges((before, after) ->
                                events.add("change " + after.getPath() + " " + text(after.getData())))
                        .forDeletes(n -> events.add("delete " + n.getPath()))
                        .forInitialized(() -> events.add("initialized"))
                        .build());
                cache.start();
                List<String> expected = new ArrayList<>();
                expected.add("create " + base + " base");
                expected.add("initialized");
                failures += expect(events, expected);
                for (int i = 0; i < nodes; i++) {
                    String path = base + "/n" + i;
                    // One step at a time: the cache fetches a node's data after
                    // its event, so steps in quick succession may coalesce.
                    client.create().forPath(path, bytes("v0"));
                    failures += expect(events, List.of("create " + path + " v0"));
                    client.setData().forPath(path, bytes("v1"));
                    failures += expect(events, List.of("change " + path + " v1"));
                    client.delete().forPath(path);
                    failures += expect(events, List.of("delete " + path));
                    if (failures > 0) {
                        break;
                    }
                }
                if (cache.get(base).isEmpty()) {
                    System.out.println("FAIL the cache lost " + base);
                    failures++;
                }
            }
            client.delete().forPath(base);
        }
        List<ConnectionState> bad = states.stream()
                .filter(s -> s != ConnectionState.CONNECTED).toList();
        if (!bad.isEmpty()) {
            System.out.println("FAIL connection states after connecting: " + bad);
            failures++;
        }
        if (failures > 0) {
            System.exit(1);
        }
        System.out.println("OK " + (2 + 3 * nodes) + " events");
    }

    private static int expect(BlockingQueue<String> events, List<String> expected) throws Exception {
        for (String want : expected) {
            String got = events.poll(EVENT_TIMEOUT_S, TimeUnit.SECONDS);
            if (!want.equals(got)) {
                System.out.println("FAIL expected [" + want + "], got [" + got + "]");
                return 1;
            }
        }
        return 0;
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String text(byte[] data) {
        return data == null ? "<null>" : new String(data, StandardCharsets.UTF_8);
    }
}
