using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Syntax;

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

        /// <summary>
        /// The printk level of a line given none: 4 (warning), the LOG target's default and the level of TRACE lines
        /// (nf_log_syslog.c). Kept per line: LOG's <c>--log-level</c> is the line's priority in dmesg and the journal.
        /// </summary>
        public const int DefaultLevel = LogFormat.WarningLevel;

        public List<(double At, string Line, int Level)> Lines { get; } = new();

        public void Add(double at, string line, int level = DefaultLevel)
        {
            Lines.Add((at, line, level));
            if (Lines.Count > Max) Lines.RemoveRange(0, Lines.Count - Max);
        }

        public JsonNode? Save() => Lines.Count == 0 ? null
            : new JsonArray(Lines.Select(l => (JsonNode)(l.Level == DefaultLevel ? new JsonArray(l.At, l.Line) : new JsonArray(l.At, l.Line, l.Level))).ToArray());

        public void Load(JsonNode node)
        {
            Lines.Clear();
            if (node is not JsonArray a) return;
            foreach (JsonNode? x in a)
            {
                if (x is JsonArray pair && pair.Count is 2 or 3)
                {
                    Lines.Add((pair[0]!.GetValue<double>(), pair[1]!.GetValue<string>(), pair.Count == 3 ? pair[2]!.GetValue<int>() : DefaultLevel));
                }
            }
        }
    }

    /// <summary>Appends a packet's log lines to the host's kernel log.</summary>
    public static void Record(RuntimeState state, PacketResult r)
    {
        if (r.Logs.Count == 0) return;
        KernelLog log = state.Get(KernelLog.Key, () => new KernelLog());
        for (int i = 0; i < r.Logs.Count; i++) log.Add(state.Now, r.Logs[i], i < r.LogLevels.Count ? r.LogLevels[i] : KernelLog.DefaultLevel);
    }

    /// <summary>
    /// <c>dmesg [-c | -C] [-t] [-J]</c>: "[seconds.micros] line" (seconds on the host clock). <c>-J</c> is util-linux
    /// 2.38's JSON document; chainwalk's <c>--json</c> prints the same objects as JSON Lines (docs/json.md).
    /// </summary>
    public static int Dmesg(string[] argv, HostStore store, ToolIo io)
    {
        bool clear = false, read = true, noTime = false, jsonDocument = false;
        foreach (string a in argv.Skip(1))
        {
            switch (a)
            {
                case "-c" or "--read-clear": clear = true; break;
                case "-C" or "--clear": clear = true; read = false; break;
                case "-t" or "--notime": noTime = true; break;
                case "-J" or "--json": jsonDocument = true; break;
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
        if (read && io.Json)
        {
            using var json = new JsonLines(io.Out);
            foreach (var (at, line, level) in log.Lines)
            {
                Utf8JsonWriter w = json.Begin();
                w.WriteNumber("pri", level);
                w.WriteNumber("time", Math.Round(at, 6));
                w.WriteString("msg", line.TrimEnd());
                json.End();
            }
        }
        else if (read && jsonDocument)
        {
            WriteDmesgDocument(io.Out, log.Lines);
        }
        else if (read)
        {
            foreach (var (at, line, level) in log.Lines)
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
    /// util-linux 2.38 <c>dmesg -J</c> (lib/jsonwrt.c): a document with a "dmesg" array, three-space indents, "time" as
    /// %12.6f; nothing at all when the log is empty (the writer opens on the first record). With -J, -t keeps "time".
    /// </summary>
    private static void WriteDmesgDocument(TextWriter output, List<(double At, string Line, int Level)> lines)
    {
        if (lines.Count == 0) return;
        var sb = new StringBuilder("{\n   \"dmesg\": [\n");
        for (int i = 0; i < lines.Count; i++)
        {
            (double at, string line, int level) = lines[i];
            sb.Append(i == 0 ? "      {\n" : "      },{\n");
            sb.Append("         \"pri\": ").Append(level.ToString(CultureInfo.InvariantCulture)).Append(",\n");
            sb.Append("         \"time\": ").Append(at.ToString("0.000000", CultureInfo.InvariantCulture).PadLeft(12)).Append(",\n");
            sb.Append("         \"msg\": \"").Append(JsonEncodedText.Encode(line.TrimEnd(), JsonLines.WriterOptions.Encoder).ToString()).Append("\"\n");
        }
        sb.Append("      }\n   ]\n}\n");
        output.Write(sb.ToString());
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
        bool json = io.Json;
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
                case "-o" or "--output" when i + 1 < argv.Length && argv[i + 1] is "json" or "short":
                    json |= argv[++i] == "json";
                    break;
                case "--output=json" or "-ojson":
                    json = true;
                    break;
                case "--output=short" or "-oshort":
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
        if (json)
        {
            WriteJournalJson(io.Out, selected, origin);
            return 0;
        }
        foreach (var (at, line, level) in selected)
        {
            string stamp = origin.AddSeconds(at).ToString("MMM dd HH:mm:ss", CultureInfo.InvariantCulture);
            io.Out.WriteLine($"{stamp} chainwalk kernel: {line.TrimEnd()}");
        }
        return 0;
    }

    /// <summary>
    /// <c>journalctl -o json</c> (also chainwalk's <c>--json</c>): one object per line with journald's field names and,
    /// as journalctl prints them, every value a string. Only the fields the host has: the timestamps (microseconds; the
    /// realtime one counted from the same 1 January the text form uses), transport, priority, facility, identifier,
    /// host name and message; no __CURSOR, _BOOT_ID or _MACHINE_ID (the virtual host has no journal files).
    /// </summary>
    private static void WriteJournalJson(TextWriter output, List<(double At, string Line, int Level)> selected, DateTime origin)
    {
        using var json = new JsonLines(output);
        long originMicros = (long)(origin - DateTime.UnixEpoch).TotalMicroseconds;
        foreach (var (at, line, level) in selected)
        {
            long micros = (long)Math.Round(at * 1e6);
            Utf8JsonWriter w = json.Begin();
            w.WriteString("__REALTIME_TIMESTAMP", (originMicros + micros).ToString(CultureInfo.InvariantCulture));
            w.WriteString("__MONOTONIC_TIMESTAMP", micros.ToString(CultureInfo.InvariantCulture));
            w.WriteString("_TRANSPORT", "kernel");
            w.WriteString("PRIORITY", level.ToString(CultureInfo.InvariantCulture));
            w.WriteString("SYSLOG_FACILITY", "0");
            w.WriteString("SYSLOG_IDENTIFIER", "kernel");
            w.WriteString("_HOSTNAME", "chainwalk");
            w.WriteString("MESSAGE", line.TrimEnd());
            json.End();
        }
    }
}
