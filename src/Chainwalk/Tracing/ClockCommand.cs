using System.Globalization;
using Chainwalk.Compat;
using Chainwalk.Host;

namespace Chainwalk.Tracing;

/// <summary>
/// <c>chainwalk clock [show | advance DURATION | set SECONDS]</c>: the virtual host's clock, which conntrack
/// timeouts, limit/hashlimit refills, recent lists and ipset timeouts run on. It only moves forward.
/// </summary>
public static class ClockCommand
{
    public const string Usage = "Usage: chainwalk clock [show | advance DURATION | set SECONDS] [--json]   (DURATION: 30, 30s, 500ms, 5m, 2h, 1d)\n";

    public static int Run(string[] args, HostStore store, ToolIo io)
    {
        bool json = io.Json || args.Contains("--json");
        args = args.Where(a => a != "--json").ToArray();
        if (args.Length == 0 || args[0] == "show")
        {
            VirtualHost h = store.LoadNetwork();
            Print(io, h.Clock, json);
            return 0;
        }
        if (args.Length != 2 || args[0] is not ("advance" or "set"))
        {
            io.Err.Write(Usage);
            return 2;
        }
        double value;
        if (args[0] == "advance")
        {
            if (!TryParseDuration(args[1], out value))
            {
                io.Err.WriteLine($"chainwalk clock: bad duration \"{args[1]}\"");
                io.Err.Write(Usage);
                return 2;
            }
        }
        else if (!double.TryParse(args[1], NumberStyles.Float, CultureInfo.InvariantCulture, out value) || !double.IsFinite(value) || value < 0)
        {
            io.Err.WriteLine($"chainwalk clock: bad time \"{args[1]}\" (seconds)");
            return 2;
        }
        using HostLock l = store.Lock(5);
        VirtualHost host = store.LoadNetwork();
        double next = args[0] == "advance" ? host.Clock + value : value;
        if (next < host.Clock)
        {
            io.Err.WriteLine($"chainwalk clock: the clock only moves forward (it is at {host.Clock.ToString("0.######", CultureInfo.InvariantCulture)})");
            return 1;
        }
        host.Clock = next;
        store.SaveNetwork(host);
        Print(io, host.Clock, json);
        return 0;
    }

    /// <summary>The clock after the command: seconds as text, or <c>{"clock":SECONDS}</c> with --json (docs/json.md).</summary>
    private static void Print(ToolIo io, double clock, bool json)
    {
        if (!json)
        {
            io.Out.WriteLine(clock.ToString("0.######", CultureInfo.InvariantCulture));
            return;
        }
        using var lines = new Chainwalk.Syntax.JsonLines(io.Out);
        lines.Begin().WriteNumber("clock", Math.Round(clock, 6));
        lines.End();
    }

    public static bool TryParseDuration(string text, out double seconds)
    {
        seconds = 0;
        (string number, double unit) = text switch
        {
            _ when text.EndsWith("ms", StringComparison.Ordinal) => (text[..^2], 0.001),
            _ when text.EndsWith('s') => (text[..^1], 1),
            _ when text.EndsWith('m') => (text[..^1], 60),
            _ when text.EndsWith('h') => (text[..^1], 3600),
            _ when text.EndsWith('d') => (text[..^1], 86400),
            _ => (text, 1),
        };
        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v)) return false;
        seconds = v * unit;
        return true;
    }
}
