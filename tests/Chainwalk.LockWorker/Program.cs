using System.Globalization;
using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;

// Test helper for LockTests: one process that appends COUNT rules to the host in DIR, one `iptables -w -A`
// command at a time (each takes and releases the host lock, loads and saves the state), exactly as COUNT
// separate CLI runs would, without paying a process start per rule.
// Usage: Chainwalk.LockWorker DIR COUNT TAG   (TAG 0-255 becomes the second octet of the source addresses)
if (args.Length != 3)
{
    Console.Error.WriteLine("usage: Chainwalk.LockWorker DIR COUNT TAG");
    return 2;
}
var store = new HostStore(args[0]);
int count = int.Parse(args[1], CultureInfo.InvariantCulture);
int tag = int.Parse(args[2], CultureInfo.InvariantCulture);
var io = new ToolIo { In = TextReader.Null, Out = Console.Out, Err = Console.Error };
for (int i = 0; i < count; i++)
{
    string source = string.Create(CultureInfo.InvariantCulture, $"10.{tag}.{i / 256}.{i % 256}");
    int rc = IptablesCompat.Run(IpFamily.V4, ["iptables", "-w", "-A", "INPUT", "-s", source, "-j", "ACCEPT"], store, io);
    if (rc != 0) return rc;
}
return 0;
