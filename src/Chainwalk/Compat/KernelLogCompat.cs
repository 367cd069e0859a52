using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Chainwalk.Engine;
using Chainwalk.Host;

namespace Chainwalk.Compat;

/// <summary>
/// The host's kernel log: the lines LOG and TRACE rules wrote for traced packets, kept with the host (runtime.json)
/// so that <c>dmesg</c> and <c>journalctl -k</c> show them as on a real machine (the guide's Lab 4 greps them).
/// </summary>
public static class KernelLogCompat
{
    /// <summary>The kernel log buffer: (host clock seconds, line), oldest first, capped like a ring buffer.</summary>
    public sealed class KernelLog : IRuntimeState
    {
        public const string Key = "kernel:log";
        public const int Max = 20000;

        public List<(double At, string Line)> Lines { get; } = new();

        public void Add(double at, string line)
        {
            Lines.Add((at, line));
            if (Lines.Count > Max) Lines.RemoveRange(0, Lines.Count - Max);
        }

        public JsonNode? Save() => Lines.Count == 0 ? null
            : new JsonArray(Lines.Select(l => (JsonNode)new JsonArray(l.At, l.Line)).ToArray());

        public void Load(JsonNode node)
        {
            Lines.Clear();
            if (node is not JsonArray a) return;
            foreach (JsonNode? x in a)
            {
                if (x is JsonArray pair && pair.Count == 2) Lines.Add((pair[0]!.GetValue<double>(), pair[1]!.GetValue<string>()));
            }
        }
    }

    /// <summary>Appends a packet's log lines to the host's kernel log.</summary>
    public static void Record(RuntimeState state, PacketResult r)
    {
        if (r.Logs.Count == 0) return;
        KernelLog log = state.Get(KernelLog.Key, () => new KernelLog());
        foreach (string line in r.Logs) log.Add(state.Now, line);
    }

    /// <summary><c>dmesg [-c | -C] [-t]</c>: "[seconds.micros] line" (seconds on the host clock).</summary>
    public static int Dmesg(string[] argv, HostStore store, ToolIo io)
    {
        bool clear = false, read = true, noTime = false;
        foreach (string a in argv.Skip(1))
        {
            switch (a)
            {
                case "-c" or "--read-clear": clear = true; break;
                case "-C" or "--clear": clear = true; read = false; break;
                case "-t" or "--notime": noTime = true; break;
                case "-T" or "--ctime" or "-k" or "--kernel" or "-H" or "--human" or "-L" or "--color" or "-x" or "--decode": break;
                default:
                    io.Err.WriteLine($"dmesg: unrecognized option '{a}'");
                    io.Err.WriteLine("Try 'dmesg --help' for more information.");
                    return 1;
            }
        }
        using HostLock l = store.Lock(5);
        RuntimeState state = RuntimeState.Load(store);
        KernelLog log = state.Get(KernelLog.Key, () => new KernelLog());
        if (read)
        {
            foreach (var (at, line) in log.Lines)
            {
                io.Out.WriteLine(noTime ? line.TrimEnd() : string.Create(CultureInfo.InvariantCulture, $"[{(long)at,5}.{(long)Math.Round((at - Math.Floor(at)) * 1e6) % 1000000:D6}] {line.TrimEnd()}"));
            }
        }
        if (clear)
        {
            log.Lines.Clear();
            state.Save(store);
        }
        return 0;
    }

    /// <summary>
    /// <c>journalctl -k</c> (also <c>-f</c>, which prints what there is and returns: the virtual host has no
    /// later packets to wait for; <c>-n N</c>, <c>-g PATTERN</c>, <c>--no-pager</c>): "Mon DD HH:MM:SS host kernel: line"
    /// with the host clock counted from 1 January 00:00:00.
    /// </summary>
    public static int Journalctl(string[] argv, HostStore store, ToolIo io)
    {
        int? lines = null;
        Regex? grep = null;
        for (int i = 1; i < argv.Length; i++)
        {
            string a = argv[i];
            switch (a)
            {
                case "-k" or "--dmesg" or "-f" or "--follow" or "--no-pager" or "-b" or "--boot" or "-q" or "--quiet" or "-e" or "--pager-end":
                    break;
                case "-n" or "--lines" when i + 1 < argv.Length && int.TryParse(argv[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out int n):
                    lines = n;
                    i++;
                    break;
                case "-g" or "--grep" when i + 1 < argv.Length:
                    grep = new Regex(argv[++i], RegexOptions.CultureInvariant);
                    break;
                default:
                    io.Err.WriteLine($"journalctl: chainwalk's journal has the kernel log only (-k, -f, -n N, -g PATTERN); unsupported: {a}");
                    return 1;
            }
        }
        using HostLock l = store.Lock(5);
        KernelLog log = RuntimeState.Load(store).Get(KernelLog.Key, () => new KernelLog());
        var selected = log.Lines.Where(x => grep is null || grep.IsMatch(x.Line)).ToList();
        if (lines is int k) selected = selected.Skip(Math.Max(0, selected.Count - k)).ToList();
        var origin = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        foreach (var (at, line) in selected)
        {
            string stamp = origin.AddSeconds(at).ToString("MMM dd HH:mm:ss", CultureInfo.InvariantCulture);
            io.Out.WriteLine($"{stamp} chainwalk kernel: {line.TrimEnd()}");
        }
        return 0;
    }
}
