using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Syntax;

/// <summary>Options of iptables-restore.</summary>
public sealed class RestoreOptions
{
    /// <summary>-c: take the counters in the file.</summary>
    public bool Counters { get; init; }

    /// <summary>-n: do not flush the tables named in the file.</summary>
    public bool NoFlush { get; init; }

    /// <summary>-T NAME: only this table is restored.</summary>
    public string? OnlyTable { get; init; }

    /// <summary>--test: parse and check only.</summary>
    public bool Test { get; init; }
}

/// <summary>
/// Reads iptables-restore input (xtables-restore.c): "*table", ":chain policy [p:b]", rule lines run
/// as iptables commands with "-t table", and COMMIT. The whole input is applied to a copy of the
/// ruleset; on any error the copy is dropped, so every table stays as it was.
/// </summary>
public sealed class RestoreReader
{
    private readonly IpFamily _family;
    private readonly string _program;
    private readonly NameDb _names;

    public RestoreReader(IpFamily family, string program, NameDb? names = null)
    {
        _family = family;
        _program = program;
        _names = names ?? NameDb.System;
    }

    /// <summary>
    /// After a failed <see cref="Apply"/>: the ruleset as of the last successful COMMIT (iptables-nft-restore
    /// commits table by table), or null when nothing was committed.
    /// </summary>
    public Ruleset? Committed { get; private set; }

    /// <summary>Applies <paramref name="text"/> to a clone of <paramref name="ruleset"/> and returns the new ruleset.</summary>
    public Ruleset Apply(Ruleset ruleset, string text, RestoreOptions options, StringBuilder? output = null)
    {
        Committed = null;
        Ruleset work = ruleset.Clone();
        Table? current = null;
        bool inTable = false;
        bool tableExisted = true, tableTouched = false;
        bool skipTable = false;
        int lineNo = 0;
        string[] lines = SplitLines(text, out bool lastHasNewline);
        for (int li = 0; li < lines.Length; li++)
        {
            string raw = lines[li];
            lineNo++;
            bool hasNewline = li < lines.Length - 1 || lastHasNewline;
            try
            {
                if (raw.Length == 0) continue;
                if (raw[0] == '#') continue;
                if (inTable && raw == "COMMIT" && hasNewline)
                {
                    inTable = false;
                    if (!skipTable && current is not null) RulesetEditor.Validate(current, "RULE_APPEND", current.Name);
                    // A table block that declares no chain and has no rule does not create the table.
                    if (!skipTable && current is not null && !tableExisted && !tableTouched) work.Remove(current.Name);
                    current = null;
                    Committed = work.Clone();
                    continue;
                }
                if (raw[0] == '*' && !inTable)
                {
                    string[] f = raw[1..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    if (f.Length == 0) throw XtablesException.Param($"{_program}: line {lineNo} table name invalid");
                    TableInfo? info = TableInfo.Find(f[0]);
                    if (info is null) throw XtablesException.Param($"{_program}: line {lineNo} table name '{f[0]}' invalid");
                    inTable = true;
                    tableExisted = work.Find(info.Name) is not null;
                    tableTouched = false;
                    skipTable = options.OnlyTable is not null && options.OnlyTable != f[0];
                    if (skipTable)
                    {
                        current = new Table(info, _family);
                        continue;
                    }
                    if (options.NoFlush)
                    {
                        current = work.GetOrCreate(info);
                    }
                    else
                    {
                        current = new Table(info, _family);
                        work.Replace(current);
                    }
                    continue;
                }
                if (raw[0] == ':' && inTable)
                {
                    tableTouched = true;
                    string[] f = raw[1..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                    if (f.Length == 0) throw XtablesException.Param($"{_program}: line {lineNo} chain name invalid");
                    string chain = f[0];
                    if (chain.Length >= 29) throw XtablesException.Param($"Invalid chain name `{chain}' (28 chars max)");
                    if (f.Length < 2) throw XtablesException.Param($"{_program}: line {lineNo} policy invalid");
                    string policy = f[1];
                    if (skipTable) continue;
                    Chain? existing = current!.Find(chain);
                    if (existing is { IsBuiltin: true } && policy is not (Verdicts.Accept or Verdicts.Drop or "-"))
                    {
                        throw XtablesException.Other($"{_family.Tool()}: Bad policy name.");
                    }
                    if (existing is { IsBuiltin: true })
                    {
                        Counters counters = default;
                        if (options.Counters)
                        {
                            if (f.Length < 3 || !TryParseCounters(f[2], out counters))
                                throw XtablesException.Param($"invalid policy counters for chain '{chain}'\n");
                        }
                        if (policy is Verdicts.Accept or Verdicts.Drop)
                        {
                            existing.Policy = policy;
                            existing.Counters = counters;
                        }
                    }
                    else if (existing is not null)
                    {
                        existing.Rules.Clear();
                    }
                    else
                    {
                        current.AddUserChain(chain);
                    }
                    continue;
                }
                if (!inTable)
                {
                    throw new XtablesException(XtablesExit.OtherProblem, $"{_program}: line {lineNo} failed") { Verbatim = true };
                }
                if (skipTable) continue;
                tableTouched = true;
                RunRuleLine(work, current!, hasNewline ? raw + "\n" : raw, lineNo, options, output);
            }
            catch (XtablesException ex)
            {
                ex.Line ??= lineNo;
                throw;
            }
        }
        if (inTable)
        {
            throw new XtablesException(XtablesExit.OtherProblem, $"{_program}: COMMIT expected at line {lineNo + 1}") { Line = -1, Verbatim = true };
        }
        return work;
    }

    private void RunRuleLine(Ruleset work, Table current, string raw, int lineNo, RestoreOptions options, StringBuilder? output)
    {
        string rest = raw;
        var argv = new List<string> { _program, "-t", current.Name };
        string? pcnt = null, bcnt = null;
        if (rest.StartsWith('['))
        {
            int close = rest.IndexOf(']', StringComparison.Ordinal);
            if (close < 0) throw XtablesException.Param($"Bad line {lineNo}: need ]\n");
            string inner = rest[1..close];
            int colon = inner.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0) throw XtablesException.Param($"Bad line {lineNo}: need :\n");
            pcnt = inner[..colon];
            bcnt = inner[(colon + 1)..];
            rest = rest[(close + 1)..];
        }
        if (options.Counters && pcnt is not null && bcnt is not null)
        {
            argv.Add("--set-counters");
            argv.Add(pcnt);
            argv.Add(bcnt);
        }
        argv.AddRange(Tokenize(rest, lineNo));
        var parser = new CommandLineParser(_family, _program, _names, restore: true) { Line = lineNo };
        ParsedCommand cmd = parser.Parse(argv.ToArray());
        if (cmd.SkipLine) return;
        var exec = new CommandExecutor(work, _names) { DeferValidation = true };
        exec.Execute(cmd);
        output?.Append(exec.Output);
    }

    /// <summary>add_param_to_argv: splits on blanks, honouring double quotes and backslash escapes inside them.</summary>
    public List<string> Tokenize(string line, int lineNo)
    {
        var args = new List<string>();
        var buf = new StringBuilder();
        bool quoteOpen = false, escaped = false;
        foreach (char ch in line)
        {
            if (quoteOpen)
            {
                if (escaped)
                {
                    buf.Append(ch);
                    escaped = false;
                    continue;
                }
                if (ch == '\\')
                {
                    escaped = true;
                    continue;
                }
                if (ch != '"')
                {
                    buf.Append(ch);
                    continue;
                }
                quoteOpen = false;
            }
            else if (ch == '"')
            {
                quoteOpen = true;
                continue;
            }
            if (ch == '"')
            {
                // closing quote: ends the parameter (even an empty one)
            }
            else if (ch is ' ' or '\t' or '\n')
            {
                if (buf.Length == 0) continue;
            }
            else
            {
                buf.Append(ch);
                if (buf.Length >= 1024) throw XtablesException.Param("Parameter too long!");
                continue;
            }
            AddParam(args, buf.ToString(), lineNo);
            buf.Clear();
        }
        if (buf.Length > 0) AddParam(args, buf.ToString(), lineNo);
        return args;
    }

    private void AddParam(List<string> args, string p, int lineNo)
    {
        bool shortWithT = p.Length > 0 && p[0] == '-' && (p.Length < 2 || p[1] != '-') && p.Contains('t', StringComparison.Ordinal);
        bool longTable = p.StartsWith("--t", StringComparison.Ordinal) && "--table".StartsWith(p, StringComparison.Ordinal);
        if (shortWithT || longTable)
        {
            throw XtablesException.Param($"The -t option cannot be used in {_program}.\n");
        }
        args.Add(p);
    }

    private static bool TryParseCounters(string text, out Counters counters)
    {
        counters = default;
        if (text.Length < 5 || text[0] != '[' || text[^1] != ']') return false;
        string[] parts = text[1..^1].Split(':');
        if (parts.Length != 2) return false;
        if (!ulong.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong p)) return false;
        if (!ulong.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong b)) return false;
        counters = new Counters(p, b);
        return true;
    }

    private static string[] SplitLines(string text, out bool lastHasNewline)
    {
        lastHasNewline = text.EndsWith('\n');
        string body = lastHasNewline ? text[..^1] : text;
        if (body.Length == 0 && lastHasNewline) return [string.Empty];
        if (body.Length == 0) return [];
        return body.Split('\n');
    }
}
