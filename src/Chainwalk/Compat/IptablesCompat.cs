using System.Text;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Compat;

/// <summary>Standard streams of a compat tool run, so tests can run the tools in process.</summary>
public sealed class ToolIo
{
    public required TextReader In { get; init; }
    public required TextWriter Out { get; init; }
    public required TextWriter Err { get; init; }

    /// <summary>
    /// JSON Lines instead of the tool's text (<c>chainwalk --json TOOL …</c>, docs/json.md): set by chainwalk's own global
    /// option, never by the tool's arguments, so every real option keeps its meaning.
    /// </summary>
    public bool Json { get; init; }

    public static ToolIo Console => new() { In = new StdinReader(), Out = new ConsoleWriter(error: false), Err = new ConsoleWriter(error: true) };
}

/// <summary>
/// The iptables, ip6tables, iptables-save and iptables-restore front ends on a virtual host: the same
/// arguments, output, messages and exit codes as iptables 1.8.9 (nf_tables).
/// </summary>
public static class IptablesCompat
{
    public static string ProgramName(IpFamily family, string suffix = "") => family.Tool() + suffix;

    /// <summary>Prints an xtables error the way xtables_error/exit_tryhelp print it; returns the exit code.</summary>
    public static int ReportError(XtablesException ex, string program, TextWriter err, bool restore = false)
    {
        var sb = new StringBuilder();
        if (ex.Preceding is { } pre)
        {
            foreach (string line in pre) sb.Append(line).Append('\n');
        }
        string prefix = $"{program} v{SaveWriter.Version}: ";
        switch (ex.Exit)
        {
            case XtablesExit.ParameterProblem:
                if (ex.Verbatim)
                {
                    if (ex.Message.Length > 0) sb.Append(ex.Message).Append('\n');
                }
                else
                {
                    sb.Append(prefix).Append(ex.Message).Append('\n');
                }
                if (restore && ex.Line is > 0) sb.Append("Error occurred at line: ").Append(ex.Line.Value).Append('\n');
                sb.Append("Try `").Append(program).Append(" -h' or '").Append(program).Append(" --help' for more information.\n");
                break;
            case XtablesExit.ResourceProblem when !ex.Verbatim && restore && ex.Line is > 0:
                // xtables-restore: the kernel's refusal, with the line of the rule.
                sb.Append(prefix).Append("\nline ").Append(ex.Line.Value).Append(':').Append(ex.Message).Append('\n');
                break;
            case XtablesExit.ResourceProblem when !ex.Verbatim:
                sb.Append(prefix).Append(ex.Message).Append('\n');
                break;
            case XtablesExit.OtherProblem when restore && !ex.Verbatim && ex.Line is > 0:
                {
                    // xtables-restore: "line N failed: " and the errno text (the message without "iptables: ").
                    int colon = ex.Message.IndexOf(": ", StringComparison.Ordinal);
                    string text = colon >= 0 ? ex.Message[(colon + 2)..] : ex.Message;
                    sb.Append(program).Append(": line ").Append(ex.Line.Value).Append(" failed: ").Append(text).Append('\n');
                    break;
                }
            default:
                sb.Append(ex.Message).Append('\n');
                break;
        }
        err.Write(sb.ToString());
        err.Flush();
        return (int)ex.Exit;
    }

    /// <summary>iptables / ip6tables with argv (argv[0] is the program name).</summary>
    public static int Run(IpFamily family, string[] argv, HostStore store, ToolIo io)
    {
        string program = ProgramName(family);
        ParsedCommand cmd;
        try
        {
            store.UseHostObjects();
            cmd = new CommandLineParser(family, program).Parse(argv);
        }
        catch (XtablesException ex)
        {
            return ReportError(ex, program, io.Err);
        }
        foreach (string w in cmd.Warnings) io.Err.WriteLine(w);
        if (family == IpFamily.V6)
        {
            // ip6tables-nft 1.8.9 does not pass -c counters of a rule to the kernel: the rule starts at 0.
            foreach (Rule r in cmd.Rules) r.Counters = default;
        }
        if (cmd.HelpRequested)
        {
            io.Out.Write(HelpText.Iptables(family));
            return 0;
        }
        if (cmd.VersionRequested)
        {
            io.Out.WriteLine($"{program} v{SaveWriter.Version}");
            return 0;
        }

        CommandExecutor? exec = null;
        try
        {
            using HostLock hostLock = store.Lock(cmd.Wait ? cmd.WaitSeconds : 0, progress: io.Err);
            // The rules just loaded are this command's own copy: a failed command is not saved, so it edits them in place.
            Ruleset work = store.LoadRules(family);
            exec = new CommandExecutor(work) { Json = io.Json };
            exec.Execute(cmd);
            if (exec.Changed) store.SaveRules(work);
            io.Out.Write(exec.Output.ToString());
            io.Out.Flush();
            return 0;
        }
        catch (XtablesException ex)
        {
            // What was printed before the failure (e.g. the listing of -L -Z) stays printed.
            if (exec is not null && exec.Output.Length > 0)
            {
                io.Out.Write(exec.Output.ToString());
                io.Out.Flush();
            }
            return ReportError(ex, program, io.Err);
        }
    }

    /// <summary>iptables-save / ip6tables-save [-c] [-t table].</summary>
    public static int Save(IpFamily family, string[] argv, HostStore store, ToolIo io)
    {
        string program = ProgramName(family, "-save");
        bool counters = false;
        string? table = null;
        for (int i = 1; i < argv.Length; i++)
        {
            string a = argv[i];
            switch (a)
            {
                case "-c":
                case "--counters":
                    counters = true;
                    break;
                case "-t":
                case "--table":
                    if (i + 1 >= argv.Length)
                    {
                        io.Err.WriteLine($"{program}: option '{a}' requires an argument");
                        return 1;
                    }
                    table = argv[++i];
                    break;
                case "-M":
                case "--modprobe":
                    i++;
                    break;
                case "-h":
                case "--help":
                    io.Out.WriteLine($"Usage: {program} [-c] [-t table] [-M modprobe] [-f file]");
                    return 0;
                case "-V":
                case "--version":
                    io.Out.WriteLine($"{program} v{SaveWriter.Version}");
                    return 0;
                default:
                    if (a.StartsWith("-t", StringComparison.Ordinal) && a.Length > 2)
                    {
                        table = a[2..];
                        break;
                    }
                    io.Err.WriteLine($"Unknown arguments found on commandline");
                    return 1;
            }
        }
        if (table is not null && TableInfo.Find(table) is null)
        {
            io.Err.WriteLine($"Table `{table}' does not exist");
            return 1;
        }
        Ruleset rules;
        try
        {
            rules = store.LoadRules(family);
        }
        catch (InvalidDataException ex)
        {
            io.Err.WriteLine($"{program}: {ex.Message}");
            return 1;
        }
        if (io.Json)
        {
            // Counters are always in the objects; -c only changes the text form.
            using var json = new JsonLines(io.Out);
            var scratch = new StringBuilder(128);
            foreach (Table t in rules.Tables)
            {
                if (table is null || t.Name == table) RuleJson.WriteTable(json, t, NameDb.System, scratch);
            }
            io.Out.Flush();
            return 0;
        }
        string stamp = SaveWriter.Stamp(DateTime.Now);
        io.Out.Write(SaveWriter.Write(rules, counters, table, stamp));
        io.Out.Flush();
        return 0;
    }

    /// <summary>iptables-restore / ip6tables-restore [-c] [-n] [-T table] [--test] [-w [s]] [FILE].</summary>
    public static int Restore(IpFamily family, string[] argv, HostStore store, ToolIo io)
    {
        string program = ProgramName(family, "-restore");
        bool counters = false, noflush = false, test = false, verbose = false;
        string? onlyTable = null, file = null;
        bool wait = false;
        double? waitSeconds = 0;
        for (int i = 1; i < argv.Length; i++)
        {
            string a = argv[i];
            switch (a)
            {
                case "-c": case "--counters": counters = true; break;
                case "-n": case "--noflush": noflush = true; break;
                case "-t": case "--test": test = true; break;
                case "-v": case "--verbose": verbose = true; break;
                case "-T":
                case "--table":
                    if (i + 1 >= argv.Length)
                    {
                        io.Err.Write($"{program}: option requires an argument -- 'T'\nTry `{program} -h' for more information.\n");
                        return 1;
                    }
                    onlyTable = argv[++i];
                    break;
                case "-w":
                case "--wait":
                    wait = true;
                    waitSeconds = null;
                    if (i + 1 < argv.Length && double.TryParse(argv[i + 1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out double s))
                    {
                        waitSeconds = s;
                        i++;
                    }
                    break;
                case "-W":
                case "--wait-interval":
                    i++;
                    break;
                case "-M":
                case "--modprobe":
                    i++;
                    break;
                case "-h":
                case "--help":
                    io.Out.Write(HelpText.Restore(program));
                    return 0;
                case "-V":
                case "--version":
                    io.Out.WriteLine($"{program} v{SaveWriter.Version}");
                    return 0;
                default:
                    if (a.StartsWith("--wait=", StringComparison.Ordinal) || (a.StartsWith("-w", StringComparison.Ordinal) && a.Length > 2))
                    {
                        wait = true;
                        waitSeconds = double.Parse(a.StartsWith("--", StringComparison.Ordinal) ? a[7..] : a[2..], System.Globalization.CultureInfo.InvariantCulture);
                        break;
                    }
                    if (a.StartsWith('-') && a.Length > 1)
                    {
                        io.Err.Write(a.StartsWith("--", StringComparison.Ordinal)
                            ? $"{program}: unrecognized option '{a}'\n"
                            : $"{program}: invalid option -- '{a[1]}'\n");
                        io.Err.Write($"Try `{program} -h' for more information.\n");
                        return 1;
                    }
                    if (file is not null)
                    {
                        io.Err.WriteLine($"Unknown arguments found on commandline");
                        return 1;
                    }
                    file = a;
                    break;
            }
        }
        _ = verbose;
        // The input as text, or as UTF-8 bytes that the reader decodes a line at a time (no string of the whole input).
        string? text = null;
        ReadOnlyMemory<byte> utf8 = default;
        if (file is null || file == "-")
        {
            if (io.In is not StdinReader stdin || !stdin.TryReadToEndUtf8(out utf8)) text = io.In.ReadToEnd();
        }
        else
        {
            try
            {
                byte[] bytes = File.ReadAllBytes(file);
                int body = RestoreReader.Utf8Body(bytes);
                if (body >= 0) utf8 = bytes.AsMemory(body);
                else text = File.ReadAllText(file);
            }
            catch (IOException ex)
            {
                io.Err.WriteLine($"Can't open {file}: {ex.Message}");
                return 1;
            }
            catch (UnauthorizedAccessException ex)
            {
                io.Err.WriteLine($"Can't open {file}: {ex.Message}");
                return 1;
            }
        }
        var options = new RestoreOptions
        {
            Counters = counters, NoFlush = noflush, OnlyTable = onlyTable, Test = test,
            IgnoreRuleCounters = family == IpFamily.V6,
        };
        store.UseHostObjects();
        var reader = new RestoreReader(family, program) { VerifySaveForms = true };
        try
        {
            using HostLock hostLock = store.Lock(wait ? waitSeconds : 0, progress: io.Err);
            Ruleset rules = store.LoadRules(family);
            var output = new StringBuilder();
            try
            {
                Ruleset result;
                using (ShortLivedProcess.BulkLoad(text?.Length ?? utf8.Length))
                {
                    result = text is not null ? reader.Apply(rules, text, options, output) : reader.ApplyUtf8(rules, utf8.Span, options, output);
                }
                foreach (string w in reader.Warnings) io.Err.WriteLine(w);
                if (!test) store.SaveRules(result);
            }
            catch (XtablesException)
            {
                // iptables-nft-restore commits each table at its COMMIT line: those stay when a later one fails.
                if (!test && reader.Committed is { } committed) store.SaveRules(committed);
                throw;
            }
            io.Out.Write(output.ToString());
            return 0;
        }
        catch (XtablesException ex)
        {
            foreach (string w in reader.Warnings) io.Err.WriteLine(w);
            return ReportError(ex, program, io.Err, restore: true);
        }
    }
}
