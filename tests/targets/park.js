// A node target: the main thread parks reading stdin; prints "READY pid".
process.stdout.write(`READY ${process.pid}\n`);
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
