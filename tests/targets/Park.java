// A JVM target: 20 Java threads asleep in Thread.sleep; prints "READY pid"; ends at end of input.
public class Park {
    public static void main(String[] args) throws Exception {
        for (int i = 0; i < 20; i++) {
            Thread t = new Thread(() -> {
                try {
                    Thread.sleep(3_600_000);
                } catch (InterruptedException e) {
                    return;
                }
            }, "sleeper-" + i);
            t.setDaemon(true);
            t.start();
        }
        System.out.println("READY " + ProcessHandle.current().pid());
        System.in.read();
    }
}
