namespace Chainwalk.Syntax;

/// <summary>One long option as getopt_long sees it; <see cref="Owner"/> says who handles it.</summary>
internal sealed record LongOption(string Name, Chainwalk.Extensions.OptionArg Arg, object Owner, object Tag);

/// <summary>
/// The parts of glibc's getopt_long that iptables relies on, with opterr = 0 and an optstring that
/// starts with '-' (non-options are returned in order as value 1): clustered short options, attached
/// and separate arguments, optional arguments only when attached, <c>--name=value</c>, unique-prefix
/// abbreviations of long options, and ':'/'?' for a missing argument or an unknown option.
/// </summary>
internal sealed class Getopt
{
    private readonly string[] _argv;
    private int _nextChar; // position inside a cluster of short options, 0 = none

    public Getopt(string[] argv)
    {
        _argv = argv;
        Optind = 1;
    }

    /// <summary>Index of the next argv element to scan (argv[0] is the program name).</summary>
    public int Optind { get; set; }

    public string? Optarg { get; private set; }

    /// <summary>The long option recognised by the last call, if it was a long option.</summary>
    public LongOption? LastLong { get; private set; }

    /// <summary>The argv element the last option came from (for messages).</summary>
    public string LastArg { get; private set; } = string.Empty;

    /// <summary>
    /// Returns the next option: a short option letter, 'L' for a long option (see <see cref="LastLong"/>),
    /// 1 for a non-option argument (in <see cref="Optarg"/>), '?' unknown, ':' missing argument, -1 at the end.
    /// </summary>
    public int Next(string shortOpts, IReadOnlyList<LongOption> longOpts)
    {
        Optarg = null;
        LastLong = null;
        if (_nextChar == 0)
        {
            if (Optind >= _argv.Length) return -1;
            string arg = _argv[Optind];
            if (arg == "--")
            {
                Optind++;
                return -1;
            }
            if (arg.Length < 2 || arg[0] != '-')
            {
                Optarg = arg;
                LastArg = arg;
                Optind++;
                return 1;
            }
            if (arg.StartsWith("--", StringComparison.Ordinal)) return NextLong(arg, longOpts);
            _nextChar = 1;
        }

        string cur = _argv[Optind];
        LastArg = cur;
        char c = cur[_nextChar++];
        int idx = shortOpts.IndexOf(c, StringComparison.Ordinal);
        bool last = _nextChar >= cur.Length;
        if (idx < 0 || c == ':' || c == '-')
        {
            if (last) { _nextChar = 0; Optind++; }
            Optopt = c;
            return '?';
        }
        bool takesArg = idx + 1 < shortOpts.Length && shortOpts[idx + 1] == ':';
        bool optional = takesArg && idx + 2 < shortOpts.Length && shortOpts[idx + 2] == ':';
        if (!takesArg)
        {
            if (last) { _nextChar = 0; Optind++; }
            return c;
        }
        if (!last)
        {
            Optarg = cur[_nextChar..];
            _nextChar = 0;
            Optind++;
            return c;
        }
        _nextChar = 0;
        Optind++;
        if (optional) return c;
        if (Optind >= _argv.Length)
        {
            Optopt = c;
            return ':';
        }
        Optarg = _argv[Optind++];
        return c;
    }

    public char Optopt { get; private set; }

    private int NextLong(string arg, IReadOnlyList<LongOption> longOpts)
    {
        LastArg = arg;
        string body = arg[2..];
        string name = body;
        string? inlineValue = null;
        int eq = body.IndexOf('=', StringComparison.Ordinal);
        if (eq >= 0)
        {
            name = body[..eq];
            inlineValue = body[(eq + 1)..];
        }
        Optind++;

        LongOption? found = null;
        for (int i = 0; i < longOpts.Count; i++)
        {
            if (longOpts[i].Name == name)
            {
                found = longOpts[i];
                break;
            }
        }
        if (found is null)
        {
            bool ambiguous = false;
            foreach (LongOption o in longOpts)
            {
                if (!o.Name.StartsWith(name, StringComparison.Ordinal)) continue;
                if (found is null) found = o;
                else if (!ReferenceEquals(found.Owner, o.Owner) || !Equals(found.Tag, o.Tag) || found.Arg != o.Arg) ambiguous = true;
            }
            if (ambiguous || found is null || name.Length == 0) return '?';
        }
        LastLong = found;
        switch (found.Arg)
        {
            case Chainwalk.Extensions.OptionArg.None:
                if (inlineValue is not null) return '?';
                break;
            case Chainwalk.Extensions.OptionArg.Required:
                if (inlineValue is not null) Optarg = inlineValue;
                else if (Optind < _argv.Length) Optarg = _argv[Optind++];
                else return ':';
                break;
            default:
                Optarg = inlineValue;
                break;
        }
        return 'L';
    }
}
