using System.Globalization;
using System.Text;
using Chainwalk.Host;

namespace Chainwalk.Compat;

/// <summary>
/// <c>nfacct add|delete|get|list [reset]|flush|version</c> (nfacct 1.0.2's commands, output and messages) on the
/// host's accounting objects.
/// </summary>
public static class NfacctCompat
{
    private const string Version = "1.0.2";

    public static int Run(string[] argv, HostStore host, ToolIo io)
    {
        if (argv.Length < 2)
        {
            io.Err.WriteLine("Usage: nfacct command [parameters]...");
            return 1;
        }
        string cmd = argv[1];
        using HostLock hostLock = host.Lock(waitSeconds: null);
        NfacctStore store = NfacctStore.Load(host);
        switch (cmd)
        {
            case "add":
                {
                    if (argv.Length < 3) return Error(io, "missing object name");
                    if (store.Find(argv[2]) is not null) return Error(io, "Device or resource busy");
                    if (argv[2].Length >= 32) return Error(io, "Invalid argument");
                    store.Objects.Add(new NfacctObject(argv[2]));
                    store.Save(host);
                    return 0;
                }
            case "delete":
                {
                    if (argv.Length < 3) return Error(io, "missing object name");
                    NfacctObject? o = store.Find(argv[2]);
                    if (o is null) return Error(io, "No such file or directory");
                    if (NfacctStore.InUse(host, o.Name)) return Error(io, "Device or resource busy");
                    store.Objects.Remove(o);
                    store.Save(host);
                    return 0;
                }
            case "get":
                {
                    if (argv.Length < 3) return Error(io, "missing object name");
                    NfacctObject? o = store.Find(argv[2]);
                    if (o is null) return Error(io, "No such file or directory");
                    if (io.Json) WriteJson(io.Out, [o]);
                    else io.Out.Write(Format(o));
                    return 0;
                }
            case "list":
                {
                    if (io.Json)
                    {
                        WriteJson(io.Out, store.Objects);
                    }
                    else
                    {
                        var sb = new StringBuilder();
                        foreach (NfacctObject o in store.Objects) sb.Append(Format(o));
                        io.Out.Write(sb.ToString());
                    }
                    if (argv.Length > 2 && argv[2] == "reset")
                    {
                        foreach (NfacctObject o in store.Objects)
                        {
                            o.Packets = 0;
                            o.Bytes = 0;
                        }
                        store.Save(host);
                    }
                    return 0;
                }
            case "flush":
                // The kernel deletes every object no rule uses and keeps the others.
                store.Objects.RemoveAll(o => !NfacctStore.InUse(host, o.Name));
                store.Save(host);
                return 0;
            case "version":
                io.Out.WriteLine($"nfacct v{Version}: utility for the Netfilter extended accounting infrastructure");
                return 0;
            default:
                return Error(io, $"unknown command: {cmd}");
        }
    }

    /// <summary>The plain-text line nfacct prints for an object (counters as 20-digit zero-padded numbers).</summary>
    public static string Format(NfacctObject o) =>
        string.Create(CultureInfo.InvariantCulture, $"{{ pkts = {o.Packets:D20}, bytes = {o.Bytes:D20} }} = {o.Name};\n");

    /// <summary><c>--json</c> list/get: one <c>{"name","packets","bytes"}</c> object per accounting object, in list order.</summary>
    private static void WriteJson(TextWriter output, IEnumerable<NfacctObject> objects)
    {
        using var json = new Chainwalk.Syntax.JsonLines(output);
        foreach (NfacctObject o in objects)
        {
            System.Text.Json.Utf8JsonWriter w = json.Begin();
            w.WriteString("name", o.Name);
            w.WriteNumber("packets", o.Packets);
            w.WriteNumber("bytes", o.Bytes);
            json.End();
        }
    }

    private static int Error(ToolIo io, string message)
    {
        io.Err.WriteLine($"nfacct v{Version}: error: {message}");
        return 1;
    }
}
